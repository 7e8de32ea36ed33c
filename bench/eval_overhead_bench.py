"""eval_overhead: what generation evals during training cost on the tiny model.

Candidate: a run with per-epoch generation evals on 16 held-out rows (eval_generate_rows=16:
greedy answers, exact match and chrF, in the training process with the PEFT model in eval
mode). Baseline: the same run with the per-epoch loss evals only. Both are
`trainer_svc.training.main` in this process on tiny-phi3, one thread, the same data and seed;
the figure is the training loop's wall time (train_runtime_s: the steps and the evals), in
turns (bench.interleave), judged on the median of the per-round ratios.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from bench.interleave import interleaved
from bench.result import BenchResult
from bench.trainer_data import models, varied_rows, write_rows

TARGET = 1.25
ROUNDS = 5
ROWS = 160  # 16 held out (eval_fraction 0.1)
GENERATE_ROWS = 16
TRAINING = {"epochs": 3, "max_length": 256, "learning_rate": 1e-3, "eval_fraction": 0.1, "seed": 42,
            "eval_max_new_tokens": 64}
_RUNS = itertools.count(1)


def _run(root: Path, dataset: str, model_dir: Path, *, generate_rows: int, tag: str) -> float:
    from trainer_svc.hyperparams import DeviceOptions, RunConfig, TrainingOptions
    from trainer_svc.training import main

    run_id = f"{tag}-{next(_RUNS)}"
    config = RunConfig(run_id=run_id, data_root=str(root), datasets=[dataset], base_model_id="tiny-phi3",
                       base_model_path=str(model_dir), adapter_name=tag, device=DeviceOptions(device="cpu"),
                       training=TrainingOptions(**TRAINING, eval_generate_rows=generate_rows))
    result = main(config)
    if result.status != "succeeded":
        raise RuntimeError(f"the {tag} run ended {result.status}")
    return 1000 * result.metrics["train_runtime_s"]


def run() -> BenchResult:
    import torch

    torch.set_num_threads(1)
    model_dir = models() / "tiny-phi3"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = write_rows(root, "varied", varied_rows(ROWS, min_words=5, max_words=60))
        comparison = interleaved(
            lambda: _run(root, dataset, model_dir, generate_rows=GENERATE_ROWS, tag="generate"),
            lambda: _run(root, dataset, model_dir, generate_rows=0, tag="loss-only"),
            rounds=ROUNDS,
        )
    return BenchResult(
        name="eval_overhead",
        target=f"training wall time with per-epoch generation evals on {GENERATE_ROWS} rows <= {TARGET}x "
               f"without (tiny-phi3, median of {ROUNDS} rounds in turns)",
        passed=comparison.ratio <= TARGET,
        figures={**comparison.figures("generate", "loss_only", unit="ms"), "target": TARGET,
                 "max_new_tokens": TRAINING["eval_max_new_tokens"], "epochs": TRAINING["epochs"]},
    )
