"""bench.interleave: the order sides run in, and the figures a verdict is taken on."""

from __future__ import annotations

from bench.interleave import Comparison, calls_in_turns, interleaved


def test_interleaved_swaps_the_first_side_every_round():
    order: list[str] = []

    def side(name: str, value: float):
        def run() -> float:
            order.append(name)
            return value

        return run

    comparison = interleaved(side("a", 2.0), side("b", 1.0), rounds=4)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert comparison.candidate == [2.0] * 4 and comparison.baseline == [1.0] * 4


def test_calls_in_turns_rotates_the_first_leg_and_keeps_each_legs_times_apart():
    order: list[int] = []
    legs = [lambda k=k: order.append(k) for k in range(3)]
    times = calls_in_turns(legs, rounds=2, calls=3, warmup=1)
    warmup, timed = order[:3], order[3:]
    assert warmup == [0, 1, 2]
    # Round 0 starts at leg 0, 1, 2 call by call; round 1 one further on.
    assert [timed[i] for i in range(0, len(timed), 3)] == [0, 1, 2, 1, 2, 0]
    assert sorted(timed) == [0] * 6 + [1] * 6 + [2] * 6  # every leg 3 calls a round, no more
    assert [len(rounds) for rounds in times.per_round] == [2, 2, 2]
    assert [len(calls) for calls in times.calls] == [6, 6, 6]


def test_the_verdict_is_the_median_of_per_round_figures_not_of_pooled_sides():
    # One disturbed round (the third: both sides slow) moves pooled medians but not per-round ones.
    comparison = Comparison(candidate=[11.0, 12.0, 40.0, 11.5, 12.5], baseline=[10.0, 10.0, 36.0, 10.5, 10.0])
    assert comparison.ratios[2] == 40.0 / 36.0
    assert comparison.ratio == sorted(c / b for c, b in zip(comparison.candidate, comparison.baseline))[2]
    assert comparison.difference == 2.0  # differences 1, 2, 4, 1, 2.5
    figures = comparison.figures("stack", "direct", unit="ms", digits=1, overhead=True)
    assert figures["overhead_ms"] == 2.0 and figures["overhead_range"] == "1.00-4.00"
    assert figures["rounds"] == 5 and figures["stack_ms"] == 12.0 and figures["direct_ms"] == 10.0
    assert figures["ratio_range"] == f"{11.5 / 10.5:.3f}-{12.5 / 10:.3f}"
    assert figures["direct_spread"] == f"±{50 * (36 - 10) / 10:.1f}%"
