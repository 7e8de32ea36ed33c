"""Near-duplicate filtering time (datagen_svc.near_dup) at 5k and 50k rows: it must grow near-linearly.

Both paths are timed: `find_near_duplicates` over a whole list, and `NearDupIndex`,
which jobs use (rows admitted one at a time as they come, one MinHash each).

Rows are instruction-like sentences from templates and word lists (so unrelated rows
share stock phrases, as generated instructions do), with 10% planted near duplicates
of an earlier row: changed case and punctuation, a polite prefix, a typo, or an extra
closing sentence. Scaling ratio = time(50k) / time(5k) / 10; target <= 1.5, on the median of
ROUNDS per-round ratios: the two sizes take turns (bench.interleave), each path on its own, and
each size's spread and the ratios' range are printed. The sizes were 10k and 100k with one run
each; five rounds of those took over 4 minutes on a quiet 2-core machine (the 10x step is kept).
`python -m bench near_dup`; NEAR_DUP_BENCH_SIZES=10000,100000 for the old sizes, 2000,10000 for a
quick run while developing.
"""

from __future__ import annotations

import os
import random
import resource
import statistics
import time

from bench.interleave import MIN_ROUNDS, interleaved
from bench.result import BenchResult
from datagen_svc.near_dup import DEFAULT_THRESHOLD, NearDupIndex, find_near_duplicates

SIZES = (5_000, 50_000)
TARGET_RATIO = 1.5
PLANTED_SHARE = 0.1
SEED = 20260
ROUNDS = MIN_ROUNDS

_VERBS = ["Explain", "Describe", "Summarize", "Write", "List", "Compare", "Outline", "Suggest", "Draft",
          "Give", "Create", "Plan", "Recommend", "Analyze", "Define", "Review", "Translate", "Design"]
_ASKS = ["a short guide to", "three ideas for", "the main steps of", "the history of", "a lesson plan on",
         "the pros and cons of", "a checklist for", "common mistakes in", "a beginner's introduction to",
         "five questions about", "a poem about", "an email about", "a story involving", "the costs of"]
_TOPICS = ["baking sourdough bread", "learning a second language", "saving for retirement", "training a puppy",
           "repairing a bicycle", "growing tomatoes indoors", "writing unit tests", "running a marathon",
           "negotiating a salary", "painting with watercolors", "organizing a wedding", "studying for exams",
           "reducing household energy use", "starting a podcast", "caring for houseplants", "hiking safely",
           "managing a remote team", "cooking with lentils", "choosing a laptop", "public speaking",
           "composting at home", "investing in index funds", "photographing the night sky", "brewing coffee",
           "building a birdhouse", "keeping chickens", "planning a road trip", "learning to swim",
           "debugging memory leaks", "designing a logo", "renting a first apartment", "meditating daily"]
_PLACES = ["in a small apartment", "on a tight budget", "in a rural town", "during winter", "at a school",
           "for a family of four", "in a busy office", "while travelling", "after retirement", "in one weekend",
           "with no prior experience", "in a noisy city", "for a charity event", "on a farm", "in a hospital"]
_AUDIENCES = ["for a ten year old", "for a busy parent", "for a university student", "for a retiree",
              "for a new manager", "for a nervous beginner", "for an expert", "for a teenager", "for a nurse",
              "for a software engineer", "for a shop owner", "for a visiting tourist"]
_TAILS = ["", "", "Keep it under 200 words.", "Use a friendly tone.", "Include an example.",
          "Answer in bullet points.", "Mention one common pitfall.", "End with a tip.", "Cite no sources."]
_ADDED_TAILS = ["Be concise.", "Thanks in advance!", "Make it practical."]


def rows(count: int, *, seed: int = SEED) -> tuple[list[str], list[int]]:
    """`count` instructions (the same for the same seed) and the positions of the planted near duplicates."""
    rng = random.Random(seed)
    out: list[str] = []
    planted: list[int] = []
    while len(out) < count:
        if out and rng.random() < PLANTED_SHARE:
            planted.append(len(out))
            out.append(_near_copy(rng.choice(out), rng))
            continue
        sentence = (f"{rng.choice(_VERBS)} {rng.choice(_ASKS)} {rng.choice(_TOPICS)} {rng.choice(_PLACES)} "
                    f"{rng.choice(_AUDIENCES)}. {rng.choice(_TAILS)}").strip()
        out.append(sentence)
    return out, planted


def _near_copy(text: str, rng: random.Random) -> str:
    """An edit that leaves a row the same request: case and punctuation, a prefix, a typo, a closing line."""
    edit = rng.randrange(4)
    if edit == 0:
        return text.upper().replace(".", "!")
    if edit == 1:
        return "Please " + text[0].lower() + text[1:]
    if edit == 2:
        words = text.split()
        at = max(range(len(words)), key=lambda i: (len(words[i]), -i))  # the longest word
        word = words[at]
        words[at] = word[:2] + word[3] + word[2] + word[4:]  # swap two letters
        return " ".join(words)
    return f"{text} {rng.choice(_ADDED_TAILS)}"


def _time(instructions: list[str], planted: list[int]) -> dict[str, float]:
    started = time.perf_counter()
    report = find_near_duplicates(instructions, threshold=DEFAULT_THRESHOLD)
    seconds = time.perf_counter() - started
    dropped = {duplicate.index for duplicate in report.dropped}
    return {"seconds": seconds, "rows_per_s": round(len(instructions) / seconds), "dropped": len(dropped),
            "planted": len(planted), "planted_found": round(len(dropped.intersection(planted)) / len(planted), 3)}


def _time_index(instructions: list[str], planted: list[int]) -> dict[str, float]:
    started = time.perf_counter()
    index = NearDupIndex(threshold=DEFAULT_THRESHOLD)
    dropped = {i for i, text in enumerate(instructions) if index.admit(i, text) is not None}
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows_per_s": round(len(instructions) / seconds), "dropped": len(dropped),
            "planted_found": round(len(dropped.intersection(planted)) / len(planted), 3)}


def run() -> BenchResult:
    sizes = tuple(int(s) for s in os.environ.get("NEAR_DUP_BENCH_SIZES", "").split(",") if s) or SIZES
    small, large = min(sizes), max(sizes)
    data = {count: rows(count) for count in (small, large)}
    figures: dict[str, object] = {}
    ratios = {}
    for path, timer in (("", _time), ("index_", _time_index)):
        last: dict[int, dict[str, float]] = {}

        def side(count: int, timer=timer, last=last) -> float:
            last[count] = timer(*data[count])
            return last[count]["seconds"]

        # Candidate: the large size's time per small-size share of rows; so the ratio is the scaling ratio.
        comparison = interleaved(lambda: side(large) / (large / small), lambda: side(small), rounds=ROUNDS)
        for count, timing in last.items():  # the last run's counts (the same every run: seeded rows)
            timing.pop("seconds")
            figures.update({f"{path}{count}_{key}": value for key, value in timing.items()})
        for count, runs in ((large, [x * large / small for x in comparison.candidate]), (small, comparison.baseline)):
            figures[f"{path}{count}_median_s"] = round(statistics.median(runs), 3)
            figures[f"{path}{count}_spread"] = f"±{50 * (max(runs) - min(runs)) / statistics.median(runs):.1f}%"
        figures[f"{path}scaling_ratio"] = round(comparison.ratio, 3)
        figures[f"{path}scaling_ratio_range"] = f"{min(comparison.ratios):.3f}-{max(comparison.ratios):.3f}"
        ratios[path] = comparison.ratio
    figures["rounds"] = ROUNDS
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return BenchResult(
        name="near_dup",
        target=f"time({large}) / time({small}) / {large // small} <= {TARGET_RATIO} (near-linear), "
               f"threshold {DEFAULT_THRESHOLD}, for the batch function and for the index jobs use "
               f"(median of {ROUNDS} rounds' ratios, sizes in turns)",
        passed=all(ratio <= TARGET_RATIO for ratio in ratios.values()),
        figures=figures,
    )
