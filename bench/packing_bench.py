"""Packing (padding-free, trl "bfd") against the old app's padded batches, on rows of varied length.

Both train the same small Phi-3 (bench.trainer_data.small_phi3), data and LoRA through the trainer's own SFTConfig
(trainer_svc.training.build_sft_config), differing only in packing: one packed
bin per step vs padded batches of 2 (the old app's CPU setting). Tokens/s counts
real (non-padding) tokens; each side runs REPEATS times, alternating, and the
medians are compared.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.result import BenchResult
from bench.trainer_data import small_phi3, varied_rows, write_rows

TARGET = 1.3
REPEATS = 3
ROWS = 48


def _tokens_per_s(data_root: Path, dataset: str, model_dir: Path, *, packing: bool) -> float:
    import torch
    from transformers import TrainerCallback

    from trainer_svc import training
    from trainer_svc.hyperparams import RunConfig

    torch.set_num_threads(1)
    config = RunConfig.from_dict({
        "run_id": "bench", "data_root": str(data_root), "datasets": [dataset], "base_model_id": "small-phi3",
        "base_model_path": str(model_dir), "device": {"device": "cpu"},
        "training": {"epochs": 1, "max_length": 512, "eval_fraction": 0.0, "packing": packing,
                     "batch_size": 1 if packing else 2, "gradient_accumulation_steps": 1},
    })
    plan, tokenizer, prepared = training._plan(config)
    model = training._load_model(plan.resolved)
    trainer = training._build_trainer(plan, model, tokenizer, prepared, data_root / "scratch", TrainerCallback())
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    real_tokens = sum(int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
                      for batch in trainer.get_train_dataloader())
    return real_tokens / seconds


def run() -> BenchResult:
    packed, padded = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = small_phi3(root)
        dataset = write_rows(root, "varied", varied_rows(ROWS, min_words=5, max_words=400))
        for _ in range(REPEATS):
            packed.append(_tokens_per_s(root, dataset, model_dir, packing=True))
            padded.append(_tokens_per_s(root, dataset, model_dir, packing=False))
    ratio = statistics.median(packed) / statistics.median(padded)
    return BenchResult(
        name="packing",
        target=f"packed tokens/s >= {TARGET}x the old app's padded batches of 2 (medians of {REPEATS})",
        passed=ratio >= TARGET,
        figures={"packed_tokens_per_s": round(statistics.median(packed)), "padded_tokens_per_s":
                 round(statistics.median(padded)), "ratio": round(ratio, 2), "target": TARGET,
                 "runs_packed": [round(x) for x in packed], "runs_padded": [round(x) for x in padded]},
    )
