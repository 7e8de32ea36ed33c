"""`make test`'s main run: the tests that need a vLLM server in one pytest process, the rest in another, side by side.

The suite alone used under one of the two cores (it waits on vLLM, subprocesses and
sockets), and most of its time is the vLLM tests. pytest-xdist's --dist loadgroup would
keep them on one worker, but it stops grouping on pytest 9.2 (pytest-xdist#1386), and two
sets of vLLM servers would cost minutes to start and share vLLM's pinned core. So: two
plain pytest processes, `-m vllm` (tests/conftest.py marks every test that uses a vLLM
fixture) and `-m "not vllm"`, each with its own data root (its SQLite test database lives
there) and its own temporary folder. Their output goes to stdout line by line, each line
prefixed with its side; the exit status is the worse of the two.

    python -m tests.support.side_by_side [pytest arguments...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# pytest's exit status when every test was deselected: not a failure for one side.
NO_TESTS_COLLECTED = 5
SIDES = {"vllm": "vllm", "rest": "not vllm"}


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="synthtune-tests-") as scratch:
        runs = {side: _start(side, marker, argv, Path(scratch) / side) for side, marker in SIDES.items()}
        lock = threading.Lock()
        pumps = [threading.Thread(target=_pump, args=(side, run, lock)) for side, run in runs.items()]
        for pump in pumps:
            pump.start()
        codes = {side: run.wait() for side, run in runs.items()}
        for pump in pumps:
            pump.join()
    codes = {side: 0 if code == NO_TESTS_COLLECTED else code for side, code in codes.items()}
    print(f"side by side: {', '.join(f'{side} exit {code}' for side, code in codes.items())}", flush=True)
    return max(codes.values())


def _start(side: str, marker: str, argv: list[str], folder: Path) -> subprocess.Popen:
    (folder / "data").mkdir(parents=True)
    env = {**os.environ, "SYNTHTUNE_DATA_ROOT": str(folder / "data")}
    command = [sys.executable, "-m", "pytest", "-m", marker, "--basetemp", str(folder / "tmp"), *argv]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)


def _pump(side: str, run: subprocess.Popen, lock: threading.Lock) -> None:
    assert run.stdout is not None
    for line in run.stdout:
        with lock:
            sys.stdout.write(f"[{side}] {line}")
            sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
