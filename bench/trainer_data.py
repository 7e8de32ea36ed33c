"""Rows of varied length for the trainer benches (deterministic, offline)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.support.models import ensure_tiny_models

REPO = Path(__file__).resolve().parent.parent
WORDS = ("river stone light paper engine garden winter signal market planet copper lantern "
         "harbor meadow thunder silver window forest bridge rocket").split()


def varied_rows(n: int, *, seed: int = 7, min_words: int = 5, max_words: int = 300) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words)))
        rows.append({"instruction": f"Q{i}: {question}?", "output": answer})
    return rows


def write_rows(data_root: Path, name: str, rows: list[dict]) -> str:
    path = data_root / "datasets" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return f"datasets/{name}.jsonl"


def models() -> Path:
    return ensure_tiny_models(REPO / "var" / "models")


def small_phi3(folder: Path) -> Path:
    """A randomly initialised Phi-3 bigger than tiny-phi3 (hidden 384, 4 layers, ~10M parameters),
    with tiny-phi3's tokenizer: large enough that compute, not per-step overhead, dominates."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tiny = models() / "tiny-phi3"
    out = folder / "small-phi3"
    config = AutoConfig.from_pretrained(tiny)
    config.hidden_size, config.intermediate_size = 384, 1024
    config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads = 4, 6, 6
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    for item in tiny.iterdir():
        if "token" in item.name or item.name.endswith(".jinja") or item.name == "generation_config.json":
            shutil.copy(item, out / item.name)
    return out
