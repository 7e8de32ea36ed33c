"""The trainer service: LoRA fine-tunes with trl + peft, one child process per run."""
