"""Benchmarks, run by `make bench` (`python -m bench`).

Adding one: create `bench/<name>_bench.py` with a `run() -> BenchResult` function.
The runner finds it by its file name, prints its result and writes
bench-results/<name>.json.
"""
