"""Shared helpers for the trainer tests: dataset files and run configs on the tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_svc.hyperparams import DeviceOptions, LoraOptions, RunConfig, TrainingOptions

ANSWER = "The blue heron waits by the quiet river."
TOPICS = ["apples", "trains", "rivers", "stars", "bread", "music", "chess", "rain", "maps", "clocks"]
VERBS = ["Tell me about", "Explain", "Describe", "Write a note on", "What do you know about",
         "Summarise facts on", "Give a fact about", "Say something about", "Comment on", "Define"]
# Never seen in training: other verbs and other topics.
HELD_OUT = ["Describe volcanoes.", "Tell me about penguins.", "Explain the moon.", "What is tea?",
            "Write a poem about snow.", "How do engines work?", "Name a colour.", "Why is the sky blue?",
            "Give me advice on sleep.", "Talk about dogs."]


def fixed_answer_rows(n: int = 100) -> list[dict]:
    """n distinct instructions (10 verbs x 10 topics) whose answer is always ANSWER."""
    rows = [{"instruction": f"{verb} {topic}.", "output": ANSWER} for topic in TOPICS for verb in VERBS]
    return rows[:n]


def write_dataset(data_root: Path, name: str, rows: list[dict] | str) -> str:
    """Write datasets/<name>.jsonl (rows, or raw text) and return its relative path."""
    path = data_root / "datasets" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = rows if isinstance(rows, str) else "".join(json.dumps(row) + "\n" for row in rows)
    path.write_text(text)
    return f"datasets/{name}.jsonl"


def run_config(data_root: Path, models: Path, *, model: str = "tiny-phi3", datasets: list[str] | None = None,
               lora: dict | None = None, training: dict | None = None, **fields) -> RunConfig:
    """A CPU run on a tiny model; the canonical id is the model's name, its folder the local path."""
    if datasets is None:
        datasets = [write_dataset(data_root, "fixed", fixed_answer_rows())]
    return RunConfig(
        run_id=fields.pop("run_id", "run-1"),
        data_root=str(data_root),
        datasets=datasets,
        base_model_id=fields.pop("base_model_id", model),
        base_model_path=fields.pop("base_model_path", str(models / model)),
        device=DeviceOptions(**{"device": "cpu", **fields.pop("device", {})}),
        lora=LoraOptions(**(lora or {})),
        training=TrainingOptions(**(training or {})),
        **fields,
    )


@pytest.fixture
def make_config(data_root, tiny_models):
    def make(**kwargs) -> RunConfig:
        return run_config(data_root, tiny_models, **kwargs)

    return make
