"""Near-duplicate filtering (datagen_svc.near_dup): precision and recall on labelled pairs, order, reasons.

tests/data/near_dup_pairs.jsonl holds 32 paraphrase-level pairs (a changed word, punctuation
or case, a reordered clause, a filler word, a typo) and 32 pairs on the same topic that ask
for different things, sharing their first rows; flattened, that is 96 distinct rows.
Precision and recall count pairs of rows put in one cluster. Measured at the default
threshold 0.8: precision 1.0, recall 0.875 (the four misses are one-word synonym swaps in
short instructions, at Jaccard 0.74 to 0.77); at 0.7: recall 1.0, precision 0.94 ("Describe
the rock cycle for a ten year old." joins the cluster of the two water-cycle rows: two false pairs).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from datagen_svc.near_dup import DEFAULT_THRESHOLD, band_shape, find_near_duplicates
from synthtune.errors import InvalidArgument

PAIRS = Path(__file__).resolve().parents[1] / "data" / "near_dup_pairs.jsonl"


def _fixture() -> tuple[list[str], set[frozenset[int]]]:
    """The fixture's distinct rows in order, and the labelled near-duplicate pairs as row sets."""
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    rows = list(dict.fromkeys(text for pair in pairs for text in (pair["a"], pair["b"])))
    position = {text: i for i, text in enumerate(rows)}
    labelled = {frozenset((position[p["a"]], position[p["b"]])) for p in pairs if p["near_duplicate"]}
    return rows, labelled


def _found_pairs(report) -> set[frozenset[int]]:
    """Every pair of rows the report puts in one cluster."""
    return {frozenset(pair) for members in report.clusters.values() for pair in itertools.combinations(members, 2)}


@pytest.mark.parametrize("threshold, min_precision, min_recall", [(DEFAULT_THRESHOLD, 1.0, 0.85), (0.7, 0.9, 1.0)])
def test_precision_and_recall_on_labelled_pairs(threshold, min_precision, min_recall):
    rows, labelled = _fixture()
    assert len(rows) == 96 and len(labelled) == 32
    found = _found_pairs(find_near_duplicates(rows, threshold=threshold))
    true_found = found & labelled
    assert found, "nothing found"
    precision, recall = len(true_found) / len(found), len(true_found) / len(labelled)
    assert precision >= min_precision, sorted(map(sorted, found - labelled))
    assert recall >= min_recall, sorted(map(sorted, labelled - found))


def test_keeps_the_first_row_and_names_its_twin_in_the_reason():
    rows = [
        "How do I reverse a linked list in Python without using extra memory?",
        "Explain the difference between weather and climate.",
        "how do I reverse a linked list in Python, without using extra memory",
        "HOW DO I REVERSE A LINKED LIST IN PYTHON WITHOUT USING EXTRA MEMORY?",
        "Explain the difference between the weather and climate.",
    ]
    report = find_near_duplicates(rows)
    assert report.kept == [0, 1]
    assert [(d.index, d.twin) for d in report.dropped] == [(2, 0), (3, 0), (4, 1)]
    assert report.clusters == {0: [0, 2, 3], 1: [1, 4]}
    first = report.dropped[0]
    assert first.jaccard == 1.0
    assert first.reason.startswith('near duplicate of row 0 ("How do I reverse a linked list in Python')
    assert "(Jaccard 1.00)" in first.reason
    last = report.dropped[-1]
    assert 0.8 <= last.jaccard < 1.0
    assert f"(Jaccard {last.jaccard:.2f})" in last.reason and "row 1 (" in last.reason


def test_same_input_same_report():
    rows, _ = _fixture()
    assert find_near_duplicates(rows) == find_near_duplicates(list(rows))


def test_clusters_do_not_chain_through_dropped_rows():
    # b is near a, c is near b but not near a: c is compared with kept rows only, so it stays.
    a = "Write a short story about a dragon who is afraid of the dark and learns to love the night"
    b = "Write a short story about a dragon who is afraid of the dark and learns to love the stars"
    c = "Write a short story about a dragon who is afraid of heights and learns to love the stars"
    report = find_near_duplicates([a, b, c], threshold=0.8)
    assert [d.index for d in report.dropped] == [1]
    assert report.kept == [0, 2]


def test_rows_without_words_and_symbols_that_change_meaning():
    report = find_near_duplicates(["???", "!!!", "", "Compute 17+25.", "Compute 17*25.", "compute 17+25"])
    # Rows with no words are one text (""), so only the first is kept; 17+25 and 17*25 differ.
    assert report.kept == [0, 3, 4]
    assert [(d.index, d.twin) for d in report.dropped] == [(1, 0), (2, 0), (5, 3)]


def test_distinct_rows_all_kept():
    rows = [f"Explain step {i} of building a house made of {material}" for i, material in
            enumerate(["brick", "wood", "straw", "glass", "steel", "stone", "mud", "ice"])]
    rows = [f"{text} in {n} sentences for a class on {topic}" for text, n, topic in
            zip(rows, range(3, 11), ["physics", "history", "art", "maths", "poetry", "farming", "music", "law"])]
    report = find_near_duplicates(rows)
    assert report.kept == list(range(8)) and not report.dropped and not report.clusters


def test_bands_catch_pairs_at_the_threshold():
    for threshold in (0.55, 0.7, 0.8, 0.9, 1.0):
        bands, rows = band_shape(threshold, 256)
        assert bands * rows <= 256
        assert 1 - (1 - threshold**rows) ** bands >= 0.98


@pytest.mark.parametrize("bad", [0, 0.5, -0.1, 1.01, 80, float("nan"), True, "0.8", None])
def test_bad_threshold_is_invalid_argument_naming_the_field(bad):
    with pytest.raises(InvalidArgument) as caught:
        find_near_duplicates(["a row"], threshold=bad)
    error = caught.value
    assert error.code == "INVALID_ARGUMENT"
    assert error.field == "near_dup.threshold"
    assert "greater than 0.5 and at most 1" in error.message and "default is 0.8" in error.message
