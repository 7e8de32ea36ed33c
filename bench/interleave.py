"""Two sides of a comparison measured in turns, so a second run of a bench gives the same verdict.

A machine's speed drifts over minutes (other load, heat, caches). Measuring all of one side
and then all of the other puts that drift into the ratio; measuring them in turns, and
taking each round's ratio of two neighbouring runs, cancels most of it. The side that goes
first swaps every round (AB BA AB ...), so neither always pays for a cold start.
The verdict is on the median of the per-round ratios (or, for an overhead, of the per-round
differences); the spread says how far to trust it.

Two shapes of side:
- `interleaved`: one run of each side a round gives one figure (rows/s, tokens/s, seconds);
- `calls_in_turns`: for per-call latencies, a round makes `calls` calls of every side, one of
  each in turn (the first side rotating call by call), and each side's figure for the round is
  the median of its calls, in milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MIN_ROUNDS = 5  # fewer rounds give a median that one disturbed round can move


@dataclass(frozen=True)
class Comparison:
    """`candidate` against `baseline`: both sides' runs, one figure per round each."""

    candidate: list[float]
    baseline: list[float]

    @property
    def ratios(self) -> list[float]:
        return [c / b for c, b in zip(self.candidate, self.baseline)]

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios: what a ratio's verdict is taken on."""
        return statistics.median(self.ratios)

    @property
    def differences(self) -> list[float]:
        return [c - b for c, b in zip(self.candidate, self.baseline)]

    @property
    def difference(self) -> float:
        """The median of the per-round differences: what an overhead's verdict is taken on."""
        return statistics.median(self.differences)

    def figures(self, candidate: str, baseline: str, *, unit: str, digits: int = 0,
                overhead: bool = False) -> dict:
        """Each side's median and relative spread, and the ratio (or with `overhead`, also the
        difference) with its range over the rounds, for the report."""
        def spread(runs: list[float]) -> str:
            median = statistics.median(runs)
            return f"±{50 * (max(runs) - min(runs)) / median:.1f}%"

        figures = {
            f"{candidate}_{unit}": round(statistics.median(self.candidate), digits),
            f"{baseline}_{unit}": round(statistics.median(self.baseline), digits),
            f"{candidate}_spread": spread(self.candidate),
            f"{baseline}_spread": spread(self.baseline),
        }
        if overhead:
            figures["overhead_" + unit] = round(self.difference, 2)
            figures["overhead_range"] = f"{min(self.differences):.2f}-{max(self.differences):.2f}"
        figures.update({
            "ratio": round(self.ratio, 3),
            "ratio_range": f"{min(self.ratios):.3f}-{max(self.ratios):.3f}",
            "rounds": len(self.ratios),
            f"runs_{candidate}": [round(x, digits) for x in self.candidate],
            f"runs_{baseline}": [round(x, digits) for x in self.baseline],
        })
        return figures


def interleaved(candidate: Callable[[], float], baseline: Callable[[], float], *, rounds: int) -> Comparison:
    """Run both sides once a round, in turns (AB BA AB ...), for `rounds` rounds."""
    ran: dict[str, list[float]] = {"candidate": [], "baseline": []}
    for round_number in range(rounds):
        order = ("candidate", "baseline") if round_number % 2 == 0 else ("baseline", "candidate")
        for side in order:
            ran[side].append((candidate if side == "candidate" else baseline)())
    return Comparison(candidate=ran["candidate"], baseline=ran["baseline"])


@dataclass(frozen=True)
class CallTimes:
    """Per side: the median milliseconds of each round (`per_round`) and every call's (`calls`)."""

    per_round: list[list[float]]
    calls: list[list[float]]

    def compare(self, candidate: int, baseline: int) -> Comparison:
        return Comparison(candidate=self.per_round[candidate], baseline=self.per_round[baseline])

    def p50(self, side: int) -> float:
        return statistics.median(self.calls[side])

    def p95(self, side: int) -> float:
        ordered = sorted(self.calls[side])
        return ordered[round(0.95 * (len(ordered) - 1))]


def calls_in_turns(sides: Sequence[Callable[[], object]], *, rounds: int, calls: int, warmup: int = 0) -> CallTimes:
    """Time `calls` calls of every side in each of `rounds` rounds, one call of each side in turn;
    the side that starts moves on by one every call (and every round), so none always follows
    the same neighbour or gets the warmest caches. `warmup` untimed calls of each side first."""
    for _ in range(warmup):
        for side in sides:
            side()
    count = len(sides)
    per_round: list[list[float]] = [[] for _ in sides]
    every: list[list[float]] = [[] for _ in sides]
    for round_number in range(rounds):
        ran: list[list[float]] = [[] for _ in sides]
        for call in range(calls):
            for k in range(count):
                side = (round_number + call + k) % count
                started = time.perf_counter()
                sides[side]()
                ran[side].append((time.perf_counter() - started) * 1000)
        for side in range(count):
            per_round[side].append(statistics.median(ran[side]))
            every[side] += ran[side]
    return CallTimes(per_round=per_round, calls=every)
