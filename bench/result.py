"""What a bench reports: named figures, the target it checks, and whether it met it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BenchResult:
    name: str
    target: str  # the claim, in words, e.g. "concurrent >= 136 rows/s"
    passed: bool
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
