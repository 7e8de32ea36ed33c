from synthtune.cli.main import main

main()
