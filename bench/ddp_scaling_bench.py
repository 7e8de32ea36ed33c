"""Training in 2 processes (torchrun, DDP) against 1: tokens/s of the same run, reported.

Both sides run `python -m torch.distributed.run -m trainer_svc.training` on the small Phi-3
with the same data and the same effective batch: 1 process with gradient accumulation 2
against 2 processes with accumulation 1 (the same optimizer steps, see
tests/trainer_svc/test_distributed.py). Each process gets its share of the cores, as the
trainer's torchrun launcher gives it. Tokens/s is every process's real tokens over the
training loop's wall time, from rank 0's final metrics.

On this 2-core CPU machine no speed-up is expected (gloo all-reduces every step, and two
processes share the cores the one process had); the figure is for GPU machines, where each
process has a device of its own. It has no target: `passed` only says the bench ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.interleave import interleaved
from bench.result import BenchResult
from bench.trainer_data import REPO, small_phi3, varied_rows, write_rows

ROUNDS = 5
ROWS = 48


def _tokens_per_s(root: Path, dataset: str, model_dir: Path, *, processes: int) -> float:
    config = {
        "run_id": f"ddp-{processes}", "data_root": str(root), "datasets": [dataset], "base_model_id": "small-phi3",
        "base_model_path": str(model_dir), "adapter_name": f"ddp-{processes}", "device": {"device": "cpu"},
        "training": {"epochs": 1, "max_length": 512, "eval_fraction": 0.0, "batch_size": 1,
                     "gradient_accumulation_steps": 2 // processes, "checkpoint_steps": 0},
        "distributed": {"processes_per_node": processes},
    }
    path = root / f"ddp-{processes}.json"
    path.write_text(json.dumps(config))
    threads = str(max(1, (os.cpu_count() or 1) // processes))
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
         "-m", "trainer_svc.training", "--config", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
        env={**os.environ, "OMP_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"training in {processes} process(es) failed:\n{done.stderr[-3000:]}")
    finished = [json.loads(line) for line in done.stdout.splitlines() if '"finished"' in line][-1]
    for adapter in (root / "adapters").glob(f"ddp-{processes}-v*"):  # each round exports anew
        shutil.rmtree(adapter)
    metrics = finished["metrics"]
    return metrics["num_tokens"] / metrics["train_runtime_s"]


def run() -> BenchResult:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = small_phi3(root)
        dataset = write_rows(root, "varied", varied_rows(ROWS, min_words=5, max_words=300))
        comparison = interleaved(lambda: _tokens_per_s(root, dataset, model_dir, processes=2),
                                 lambda: _tokens_per_s(root, dataset, model_dir, processes=1), rounds=ROUNDS)
    return BenchResult(
        name="ddp_scaling",
        target=f"reported: tokens/s of 2 processes against 1 (median of {ROUNDS} rounds in turns; "
               "no speed-up expected on a 2-core CPU)",
        passed=True,
        figures={**comparison.figures("two_processes", "one_process", unit="tokens_per_s"),
                 "cpu_count": os.cpu_count()},
    )
