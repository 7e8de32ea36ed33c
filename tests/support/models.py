"""Build the test models on demand, once per machine: the tiny ones (scripts/build_tiny_models.py)
and SmolLM2 (scripts/build_smollm2.py).

A folder counts as built only when its `.built` marker holds the current build
fingerprint (the script's source plus library versions), so a half-built folder
or one made by an older script is rebuilt. A file lock serialises concurrent
pytest processes; the script swaps the finished folder in with renames.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from tests.support.procs import REPO

BUILD_SCRIPT = REPO / "scripts" / "build_tiny_models.py"
SMOLLM2_SCRIPT = REPO / "scripts" / "build_smollm2.py"
BUILD_TIMEOUT_S = 300


@cache
def build_script(path: Path = BUILD_SCRIPT) -> ModuleType:
    """A build script as a module (cheap: it imports torch/transformers only inside functions)."""
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here while the file executes
    spec.loader.exec_module(module)
    return module


def ensure_tiny_models(models_dir: Path) -> Path:
    """Make sure `models_dir` holds tiny-phi3, tiny-llama and tiny-llama-plain; return it.

    Builds (in a subprocess, seconds) only when the marker is missing or stale.
    Safe to call from several processes at once.
    """
    models_dir = Path(models_dir)
    script = build_script()
    if script.is_built(models_dir):
        return models_dir
    models_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = models_dir.with_name(f".{models_dir.name}.lock")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not script.is_built(models_dir):  # another process may have built it while we waited
            _run_build(models_dir)
    if not script.is_built(models_dir):
        raise RuntimeError(f"{BUILD_SCRIPT.name} finished but {models_dir} has no valid marker")
    return models_dir


def ensure_smollm2(models_dir: Path) -> Path:
    """The SmolLM2 folder in `models_dir`, converted first if it is missing or from another build."""
    models_dir = Path(models_dir)
    script = build_script(SMOLLM2_SCRIPT)
    if not script.is_built(models_dir):
        models_dir.mkdir(parents=True, exist_ok=True)
        with (models_dir.parent / f".{models_dir.name}.smollm2.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not script.is_built(models_dir):
                _run_build(models_dir, SMOLLM2_SCRIPT)
    if not script.is_built(models_dir):
        raise RuntimeError(f"{SMOLLM2_SCRIPT.name} finished but {models_dir} has no valid marker")
    return models_dir / script.NAME


def _run_build(models_dir: Path, script: Path = BUILD_SCRIPT) -> None:
    # A subprocess keeps torch and its global seed out of the test process.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(models_dir)],
        cwd=REPO,
        env=env,
        check=False,  # failures are raised below, with the output
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{script.name} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
