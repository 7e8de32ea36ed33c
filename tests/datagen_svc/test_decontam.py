"""Decontamination (datagen_svc.decontam): planted eval overlaps are found, clean rows kept.

tests/data/decontam_planted.jsonl: 16 eval questions and 32 training rows. 16 rows are
planted copies of an eval question (verbatim, case and punctuation changed, a prefix or
suffix instruction, wrapped in a longer request or a chat template, a word changed, a
tail added); one clean row shares a 13-word opening with eval row 1 and is dropped on
purpose (decontamination errs towards dropping); 15 rows are on the same topics and kept.
Measured at the defaults (8-grams, 0.5): all 17 expected rows dropped, none of the 15
others; the copy with one word changed sits at exactly 0.5.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datagen_svc.decontam import build_eval_index, find_contaminated
from synthtune.errors import InvalidArgument

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "decontam_planted.jsonl"


def _fixture() -> tuple[list[str], list[str], dict[int, int]]:
    """Eval texts, training texts, and training row -> the eval row it should be dropped for."""
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    eval_texts = [r["text"] for r in rows if r["split"] == "eval"]
    train = [r for r in rows if r["split"] == "train"]
    expected = {i: r["planted_from"] for i, r in enumerate(train) if r["planted_from"] is not None}
    return eval_texts, [r["text"] for r in train], expected


def test_planted_overlaps_are_found_and_clean_rows_kept():
    eval_texts, train, expected = _fixture()
    report = find_contaminated(train, build_eval_index(eval_texts))
    found = {c.index: c.eval_index for c in report.dropped}
    assert len(expected) == 17
    assert found == expected  # precision and recall 1.0, each naming the right eval row
    assert report.kept == [i for i in range(len(train)) if i not in expected]


def test_reason_names_the_eval_row_and_the_overlap():
    index = build_eval_index(["Name the largest planet in our solar system.",
                              "Write a haiku about a frog jumping into an old pond on a quiet summer evening."],
                             name="eval split of adapter astro-v2")
    report = find_contaminated(["name the largest planet in our solar system",
                                "For my class: write a haiku about a frog jumping into an old pond on a quiet "
                                "summer evening. Then explain it."], index)
    short, wrapped = report.dropped
    assert (short.eval_index, short.overlap) == (0, 1.0)
    assert short.reason == 'same words as eval split of adapter astro-v2 row 0 ("Name the largest planet in our solar system.")'
    assert (wrapped.eval_index, wrapped.overlap) == (1, 1.0)
    assert wrapped.reason.startswith('overlaps eval split of adapter astro-v2 row 1 ("Write a haiku about a frog')
    assert "9 shared 8-word runs, 100% of the shorter" in wrapped.reason


def test_short_rows_match_only_whole_texts():
    index = build_eval_index(["What is recursion?", "Explain what recursion is in programming, with a small example in Python."])
    report = find_contaminated(["What is recursion", "What is recursion used for in compilers?", "recursion"], index)
    assert [c.index for c in report.dropped] == [0]
    assert report.kept == [1, 2]


def test_threshold_and_n_change_what_counts():
    eval_texts, train, expected = _fixture()
    strict = find_contaminated(train, build_eval_index(eval_texts, n=13), threshold=0.9)
    assert {c.index for c in strict.dropped} < set(expected)
    loose = find_contaminated(train, build_eval_index(eval_texts), threshold=0.3)
    assert {c.index for c in loose.dropped} >= set(expected)


def test_same_input_same_report():
    eval_texts, train, _ = _fixture()
    assert find_contaminated(train, build_eval_index(eval_texts)) == find_contaminated(
        list(train), build_eval_index(list(eval_texts)))


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, float("nan"), True, "0.5"])
def test_bad_threshold_is_invalid_argument_naming_the_field(bad):
    with pytest.raises(InvalidArgument) as caught:
        find_contaminated(["a row"], build_eval_index(["an eval row"]), threshold=bad)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.field == "decontam.threshold"
    assert "greater than 0 and at most 1" in caught.value.message and "default is 0.5" in caught.value.message


@pytest.mark.parametrize("bad", [0, 2, 51, 8.0, True, None])
def test_bad_ngram_is_invalid_argument_naming_the_field(bad):
    with pytest.raises(InvalidArgument) as caught:
        build_eval_index(["an eval row"], n=bad)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.field == "decontam.ngram"
    assert "from 3 to 50" in caught.value.message and "default is 8" in caught.value.message
