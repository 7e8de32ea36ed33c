"""`python -m bench [NAME ...]`: run every bench/*_bench.py (or those named), print, save JSON.

Exit status 1 when any bench misses its target.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import bench
from bench.result import BenchResult

RESULTS_DIR = Path(__file__).resolve().parent.parent / "bench-results"


def discover() -> list[str]:
    """Names of every bench module, e.g. "datagen" for bench/datagen_bench.py."""
    return sorted(
        m.name.removesuffix("_bench")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.endswith("_bench")
    )


def run_one(name: str) -> BenchResult:
    module = importlib.import_module(f"bench.{name}_bench")
    return module.run()


def report(result: BenchResult, *, seconds: float) -> None:
    verdict = "PASS" if result.passed else "FAIL"
    print(f"[{verdict}] {result.name}: target {result.target} ({seconds:.1f}s)")
    for key, value in result.figures.items():
        shown = f"{value:.2f}" if isinstance(value, float) else value
        print(f"    {key:<28} {shown}")


def save(result: BenchResult) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{result.name}.json"
    data = {**result.to_json(), "finished_at": datetime.now(UTC).isoformat()}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the synthtune benchmarks.")
    parser.add_argument("names", nargs="*", help=f"benches to run (default: all of {', '.join(discover())})")
    args = parser.parse_args(argv)
    names = args.names or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        parser.error(f"unknown bench(es): {', '.join(unknown)}")
    failed = 0
    for name in names:
        started = time.perf_counter()
        result = run_one(name)
        report(result, seconds=time.perf_counter() - started)
        print(f"    results: {save(result).relative_to(RESULTS_DIR.parent)}")
        failed += not result.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
