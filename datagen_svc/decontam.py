"""Decontamination: drop rows whose instruction overlaps an evaluation set by word n-grams.

Meant to run as a filter step of a generation job, or as a job of its own on an
existing dataset, against any evaluation text: another dataset's instructions, or
the eval split an adapter was measured on. Build the index once with
`build_eval_index` (it can serve many datasets), then `find_contaminated` with the
rows' instructions in dataset order; write only `report.kept` and store each
`report.dropped[i].reason` in the job's event log. Nothing here reads or writes
files. Row numbers are 0-based positions in the input, eval rows likewise.

A row is contaminated when its word n-grams overlap one eval row's by at least
`threshold`, measured as shared n-grams / the smaller of the two n-gram sets (the
overlap coefficient): 1.0 when the eval question sits whole inside a longer row
("Answer this: <question> Show your work.") or the row is a piece of a longer eval
row. The share of the row's own n-grams alone would let padding hide a copy: an
eval question wrapped in two extra sentences scored 0.39 on the fixture.

A row shorter than n words has no n-gram, so it is contaminated only when its
normalised words equal an eval row's; an eval row shorter than n words likewise
only catches rows with exactly its words (matching it inside longer rows would
drop every row that contains a short stock question).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from datagen_svc.filter_params import check_int, check_share
from datagen_svc.shingles import preview, word_ngrams, words

# 8 rather than the 13 used for pretraining documents: instructions are short
# (the rows in tests/data/decontam_planted.jsonl have 4 to 30 words), so 13-grams
# leave a short eval question one or two n-grams and a changed word hides it.
# Measured on that fixture at threshold 0.5: 8-grams catch all 16 planted copies
# (the one with a word changed at exactly 0.5) and no same-topic row; 13-grams
# miss that copy; 5-grams also catch it but drop more rows that share stock phrases.
DEFAULT_NGRAM = 8
MIN_NGRAM = 3  # shorter runs ("how do i") are everywhere
MAX_NGRAM = 50  # longer than nearly any instruction: only exact copies would be caught
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class EvalIndex:
    """The n-grams of an eval set and the eval rows that hold each one."""

    name: str  # shown in reasons, e.g. "eval split of adapter pirate-v3"
    n: int
    texts: Sequence[str]  # the eval instructions as given, for previews
    rows_with_ngram: dict[str, list[int]]
    ngram_counts: list[int]  # per eval row: how many distinct n-grams it has
    first_row_with_words: dict[str, int]  # normalised words joined by a space -> eval row


@dataclass(frozen=True)
class Contaminated:
    index: int  # the dropped row
    eval_index: int  # the eval row it overlaps most (lowest row on ties)
    overlap: float  # shared n-grams / the smaller n-gram set of the two; 1.0 for the same words
    reason: str  # for people: names the eval row, its opening words and the overlap


@dataclass(frozen=True)
class DecontamReport:
    kept: list[int]  # ascending
    dropped: list[Contaminated]  # ascending by index


def check_ngram(value: object, *, field: str = "decontam.ngram") -> int:
    """n as an int, or InvalidArgument naming `field` and the allowed range."""
    return check_int(
        value, field=field, low=MIN_NGRAM, high=MAX_NGRAM, default=DEFAULT_NGRAM,
        hint="Smaller catches shorter shared passages but also shared stock phrases.",
    )


def check_threshold(value: object, *, field: str = "decontam.threshold") -> float:
    """The threshold as a float, or InvalidArgument naming `field` and the allowed range."""
    return check_share(
        value, field=field, above=0.0, default=DEFAULT_THRESHOLD,
        hint="It is shared n-grams over the smaller n-gram set of row and eval row: lower drops more rows.",
    )


def build_eval_index(eval_texts: Sequence[str], *, n: int = DEFAULT_NGRAM, name: str = "eval set") -> EvalIndex:
    """The index `find_contaminated` checks rows against. Raises InvalidArgument ("decontam.ngram") for a bad n."""
    n = check_ngram(n)
    by_ngram: dict[str, list[int]] = {}
    counts: list[int] = []
    by_words: dict[str, int] = {}
    for eval_index, text in enumerate(eval_texts):
        tokens = words(text)
        by_words.setdefault(" ".join(tokens), eval_index)
        grams = word_ngrams(tokens, n)
        counts.append(len(grams))
        for gram in grams:
            by_ngram.setdefault(gram, []).append(eval_index)
    by_words.pop("", None)  # an eval row with no words matches nothing
    return EvalIndex(name=name, n=n, texts=eval_texts, rows_with_ngram=by_ngram, ngram_counts=counts,
                     first_row_with_words=by_words)


def find_contaminated(
    instructions: Sequence[str], eval_index: EvalIndex, *, threshold: float = DEFAULT_THRESHOLD
) -> DecontamReport:
    """Which rows to keep and which to drop as overlapping the eval set.

    Raises InvalidArgument (field "decontam.threshold") unless 0 < threshold <= 1.
    """
    threshold = check_threshold(threshold)
    kept: list[int] = []
    dropped: list[Contaminated] = []
    for index, text in enumerate(instructions):
        found = _overlap(words(text), eval_index)
        if found and found[1] >= threshold:
            eval_row, overlap, reason = found
            dropped.append(Contaminated(index=index, eval_index=eval_row, overlap=overlap, reason=reason))
        else:
            kept.append(index)
    return DecontamReport(kept=kept, dropped=dropped)


def _overlap(tokens: list[str], index: EvalIndex) -> tuple[int, float, str] | None:
    """(eval row, overlap, reason) for the eval row this row overlaps most, or None when it shares nothing."""
    whole = index.first_row_with_words.get(" ".join(tokens))
    if whole is not None:
        return whole, 1.0, f'same words as {index.name} row {whole} ("{preview(index.texts[whole])}")'
    grams = word_ngrams(tokens, index.n)
    shared = Counter(row for gram in grams for row in index.rows_with_ngram.get(gram, ()))
    if not shared:
        return None

    def overlap_with(row: int) -> float:
        return shared[row] / min(len(grams), index.ngram_counts[row])

    # Highest overlap first, then the lowest eval row, so the report does not depend on dict order.
    eval_row = min(shared, key=lambda row: (-overlap_with(row), row))
    overlap = overlap_with(eval_row)
    reason = (f'overlaps {index.name} row {eval_row} ("{preview(index.texts[eval_row])}"): '
              f"{shared[eval_row]} shared {index.n}-word runs, {overlap:.0%} of the shorter")
    return eval_row, overlap, reason


def contamination(
    instruction: str, eval_index: EvalIndex, *, threshold: float = DEFAULT_THRESHOLD, index: int = 0
) -> Contaminated | None:
    """One row's check, for a job that checks rows as they come: the overlap that drops it, or None.

    `threshold` is trusted (checked once with `check_threshold` when the job was validated).
    """
    found = _overlap(words(instruction), eval_index)
    if found and found[1] >= threshold:
        eval_row, overlap, reason = found
        return Contaminated(index=index, eval_index=eval_row, overlap=overlap, reason=reason)
    return None
