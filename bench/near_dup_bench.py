"""Near-duplicate filtering time (datagen_svc.near_dup) at 10k and 100k rows: it must grow near-linearly.

Both paths are timed: `find_near_duplicates` over a whole list, and `NearDupIndex`,
which jobs use (rows admitted one at a time as they come, one MinHash each).

Rows are instruction-like sentences from templates and word lists (so unrelated rows
share stock phrases, as generated instructions do), with 10% planted near duplicates
of an earlier row: changed case and punctuation, a polite prefix, a typo, or an extra
closing sentence. Scaling ratio = time(100k) / time(10k) / 10; target <= 1.5.
`python -m bench near_dup`; NEAR_DUP_BENCH_SIZES=2000,10000 for a quick run while developing.
"""

from __future__ import annotations

import os
import random
import resource
import time

from bench.result import BenchResult
from datagen_svc.near_dup import DEFAULT_THRESHOLD, NearDupIndex, find_near_duplicates

SIZES = (10_000, 100_000)
TARGET_RATIO = 1.5
PLANTED_SHARE = 0.1
SEED = 20260

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


def _time(count: int) -> dict[str, float]:
    instructions, planted = rows(count)
    started = time.perf_counter()
    report = find_near_duplicates(instructions, threshold=DEFAULT_THRESHOLD)
    seconds = time.perf_counter() - started
    dropped = {duplicate.index for duplicate in report.dropped}
    return {"seconds": round(seconds, 3), "rows_per_s": round(count / seconds), "dropped": len(dropped),
            "planted": len(planted), "planted_found": round(len(dropped.intersection(planted)) / len(planted), 3)}


def _time_index(count: int) -> dict[str, float]:
    instructions, planted = rows(count)
    started = time.perf_counter()
    index = NearDupIndex(threshold=DEFAULT_THRESHOLD)
    dropped = {i for i, text in enumerate(instructions) if index.admit(i, text) is not None}
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "rows_per_s": round(count / seconds), "dropped": len(dropped),
            "planted_found": round(len(dropped.intersection(planted)) / len(planted), 3)}


def run() -> BenchResult:
    sizes = tuple(int(s) for s in os.environ.get("NEAR_DUP_BENCH_SIZES", "").split(",") if s) or SIZES
    small, large = min(sizes), max(sizes)
    timings = {count: _time(count) for count in sorted(set(sizes))}
    ratio = timings[large]["seconds"] / timings[small]["seconds"] / (large / small)
    figures: dict[str, object] = {}
    for count, timing in timings.items():
        figures.update({f"{count}_{key}": value for key, value in timing.items()})
    figures["scaling_ratio"] = round(ratio, 3)
    in_jobs = {count: _time_index(count) for count in sorted(set(sizes))}
    for count, timing in in_jobs.items():
        figures.update({f"index_{count}_{key}": value for key, value in timing.items()})
    index_ratio = in_jobs[large]["seconds"] / in_jobs[small]["seconds"] / (large / small)
    figures["index_scaling_ratio"] = round(index_ratio, 3)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return BenchResult(
        name="near_dup",
        target=f"time({large}) / time({small}) / {large // small} <= {TARGET_RATIO} (near-linear), "
               f"threshold {DEFAULT_THRESHOLD}, for the batch function and for the index jobs use",
        passed=ratio <= TARGET_RATIO and index_ratio <= TARGET_RATIO,
        figures=figures,
    )
