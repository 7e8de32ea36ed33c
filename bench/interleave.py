"""Two sides of a comparison measured in turns, so a second run of a bench gives the same verdict.

A machine's speed drifts over minutes (other load, heat, caches). Measuring all of one side
and then all of the other puts that drift into the ratio; measuring them in turns, and
taking each round's ratio of two neighbouring runs, cancels most of it. The side that goes
first swaps every round (AB BA AB ...), so neither always pays for a cold start.
The verdict is on the median of the per-round ratios; the spread says how far to trust it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    """`candidate` against `baseline`: both sides' runs (one figure each, higher is better)."""

    candidate: list[float]
    baseline: list[float]

    @property
    def ratios(self) -> list[float]:
        return [c / b for c, b in zip(self.candidate, self.baseline)]

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios: what the verdict is taken on."""
        return statistics.median(self.ratios)

    def figures(self, candidate: str, baseline: str, *, unit: str) -> dict:
        """Each side's median and relative spread, and the ratio with its range, for the report."""
        def spread(runs: list[float]) -> str:
            median = statistics.median(runs)
            return f"±{50 * (max(runs) - min(runs)) / median:.1f}%"

        return {
            f"{candidate}_{unit}": round(statistics.median(self.candidate)),
            f"{baseline}_{unit}": round(statistics.median(self.baseline)),
            f"{candidate}_spread": spread(self.candidate),
            f"{baseline}_spread": spread(self.baseline),
            "ratio": round(self.ratio, 3),
            "ratio_range": f"{min(self.ratios):.3f}-{max(self.ratios):.3f}",
            "rounds": len(self.ratios),
            f"runs_{candidate}": [round(x) for x in self.candidate],
            f"runs_{baseline}": [round(x) for x in self.baseline],
        }


def interleaved(candidate: Callable[[], float], baseline: Callable[[], float], *, rounds: int) -> Comparison:
    """Run both sides once a round, in turns (AB BA AB ...), for `rounds` rounds."""
    ran: dict[str, list[float]] = {"candidate": [], "baseline": []}
    for round_number in range(rounds):
        order = ("candidate", "baseline") if round_number % 2 == 0 else ("baseline", "candidate")
        for side in order:
            ran[side].append((candidate if side == "candidate" else baseline)())
    return Comparison(candidate=ran["candidate"], baseline=ran["baseline"])
