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
