"""Near-duplicate instructions: MinHash LSH over character shingles, checked by exact Jaccard.

Meant to run as a filter step at the end of a generation job (on the rows it
kept), or as a job of its own on an existing dataset: the caller passes the
rows' instructions in dataset order, writes only `report.kept`, and stores each
`report.dropped[i].reason` in the job's event log. Nothing here reads or writes
files, and the result depends only on the input (fixed seed, fixed hash).

Rows are taken in order and the first row of each cluster is kept: a later row
is dropped when its shingle set's exact Jaccard similarity to a kept row is at
least `threshold`. Only kept rows are compared against, so clusters never chain
(A ~ B ~ C with A !~ C keeps C). Row numbers are 0-based positions in the input.

Cost: one MinHash per distinct row plus a few band look-ups, so time grows
about linearly with rows (bench/near_dup_bench.py); lower thresholds make more
candidates to check and cost more. Memory is about 9 KB per kept row, mostly
datasketch's band index (95 MB traced peak for 10k rows).
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from datasketch import MinHash, MinHashLSH

from datagen_svc.filter_params import check_share
from datagen_svc.shingles import char_shingles, jaccard, preview, words

DEFAULT_THRESHOLD = 0.8
# Below this, two instructions share too little to be one row written twice, and
# LSH candidates grow towards all pairs.
MIN_THRESHOLD = 0.5

# Character 3-grams over the normalised words. Measured on tests/data/near_dup_pairs.jsonl
# (32 labelled paraphrase pairs, 32 same-topic distinct pairs) at Jaccard >= 0.8:
# char 3-grams find 28/32 with no false pair; 5-grams 22/32, word 3-grams 12/32
# (one changed word breaks three of a short instruction's ten 3-grams), and word
# unigrams 29/32 but also a false pair ("water cycle" / "rock cycle"). Short shingles also
# absorb typos and plurals ("organise"/"organize", "position"/"positions").
SHINGLE_CHARS = 3
# 256 rather than 128 permutations: char 3-grams give unrelated instructions built
# from stock phrases a Jaccard of 0.2-0.5, and with 128 permutations the bands that
# still catch pairs at 0.8 (21 bands of 6) made 9.9 candidates per row at 10k rows,
# a number that grows with every kept row; 28 bands of 9 make 0.8 (bench/near_dup_bench.py rows).
NUM_PERM = 256
SEED = 1
# The bands are chosen so a pair exactly at the threshold becomes a candidate this
# often (0.982 at 0.8, 0.994 at 0.82). datasketch's own choice for threshold 0.8
# (9 bands of 13 at 128 permutations) finds only 40% of such pairs; candidates are
# verified exactly, so extra ones cost time, not precision.
CANDIDATE_RECALL = 0.98
# Candidates whose MinHash estimate is this far below the threshold skip the exact
# check: the estimate's standard deviation at 256 permutations is at most 0.031
# (0.025 at Jaccard 0.8), so a pair at the threshold is skipped far less than once in 1000.
ESTIMATE_MARGIN = 0.1


@dataclass(frozen=True)
class NearDuplicate:
    index: int  # the dropped row
    twin: int  # the kept row it duplicates
    jaccard: float  # exact, on the shingle sets
    reason: str  # for people: names the twin, its opening words and the similarity


@dataclass(frozen=True)
class NearDupReport:
    kept: list[int]  # row numbers to keep, ascending
    dropped: list[NearDuplicate]  # ascending by index
    # kept row -> [that row, then each row dropped as its duplicate]; only clusters of two or more
    clusters: dict[int, list[int]] = field(default_factory=dict)


def check_threshold(value: object, *, field: str = "near_dup.threshold") -> float:
    """The threshold as a float, or InvalidArgument naming `field` and the allowed range."""
    return check_share(
        value, field=field, above=MIN_THRESHOLD, default=DEFAULT_THRESHOLD,
        hint="Lower finds looser paraphrases and drops more rows; 1 drops only rows with the same shingles.",
    )


def band_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) with the most rows per band that still reach CANDIDATE_RECALL at `threshold`."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= CANDIDATE_RECALL:
            return bands, rows
    return num_perm, 1


def find_near_duplicates(instructions: Sequence[str], *, threshold: float = DEFAULT_THRESHOLD) -> NearDupReport:
    """Which rows to keep and which to drop as near duplicates of an earlier kept row.

    Raises InvalidArgument (field "near_dup.threshold") unless 0.5 < threshold <= 1.
    Same input, same report.
    """
    threshold = check_threshold(threshold)
    texts = [" ".join(words(text)) for text in instructions]
    first_with_text: dict[str, int] = {}
    for index, text in enumerate(texts):
        first_with_text.setdefault(text, index)
    distinct = [index for index, text in enumerate(texts) if first_with_text[text] == index]

    bands, rows = band_shape(threshold, NUM_PERM)
    lsh = MinHashLSH(num_perm=NUM_PERM, params=(bands, rows))
    signatures = np.zeros((len(texts), NUM_PERM), dtype=np.uint32)  # filled for kept rows
    shingle_sets, to_sketch = itertools.tee(char_shingles(texts[i], SHINGLE_CHARS) for i in distinct)
    sketches = MinHash.generator(
        ([s.encode() for s in shingles] for shingles in to_sketch),
        num_perm=NUM_PERM, seed=SEED, hashfunc=zlib.crc32,  # crc32: deterministic and 3x faster than sha1
    )
    twin_of: dict[int, tuple[int, float]] = {}  # dropped distinct row -> (kept row, Jaccard)
    for index, shingles, sketch in zip(distinct, shingle_sets, sketches):
        if not shingles:
            continue  # no words to compare; a repeat of it is caught as the same text below
        match = _best_twin(shingles, sketch, lsh, signatures, texts, threshold)
        if match:
            twin_of[index] = match
        else:
            lsh.insert(index, sketch, check_duplication=False)
            signatures[index] = sketch.hashvalues

    kept: list[int] = []
    dropped: list[NearDuplicate] = []
    clusters: dict[int, list[int]] = {}
    for index, text in enumerate(texts):
        first = first_with_text[text]
        if first in twin_of:  # this text, or an earlier row with it, is near another kept row
            twin, similarity = twin_of[first]
        elif first != index:  # the same words as a kept row
            twin, similarity = first, 1.0
        else:
            kept.append(index)
            continue
        clusters.setdefault(twin, [twin]).append(index)
        dropped.append(NearDuplicate(
            index=index, twin=twin, jaccard=similarity,
            reason=f'near duplicate of row {twin} ("{preview(instructions[twin])}") (Jaccard {similarity:.2f})',
        ))
    return NearDupReport(kept=kept, dropped=dropped, clusters=clusters)


def _best_twin(
    shingles: set[str], sketch: MinHash, lsh: MinHashLSH, signatures: np.ndarray, texts: list[str], threshold: float
) -> tuple[int, float] | None:
    """The kept row most similar to these shingles at or above `threshold` (lowest row on ties), or None."""
    candidates = np.array(sorted(lsh.query(sketch)), dtype=np.int64)
    if not candidates.size:
        return None
    estimates = (signatures[candidates] == sketch.hashvalues).mean(axis=1)
    best: tuple[int, float] | None = None
    for candidate in candidates[estimates >= threshold - ESTIMATE_MARGIN].tolist():
        similarity = jaccard(shingles, char_shingles(texts[candidate], SHINGLE_CHARS))
        if similarity >= threshold and (best is None or similarity > best[1]):
            best = (candidate, similarity)
    return best


class NearDupIndex:
    """The same check, one row at a time, for a job that keeps rows as they come.

    `admit` answers whether a row is a near duplicate of a row admitted before it
    (and if not, admits it); `remove` takes a row back out when nothing was kept for
    it after all (its answer failed or the judge dropped it), so a later twin may
    take its place. Keys are the job's row numbers, which reasons name.
    """

    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD):
        self.threshold = check_threshold(threshold)
        bands, rows = band_shape(self.threshold, NUM_PERM)
        self._lsh = MinHashLSH(num_perm=NUM_PERM, params=(bands, rows))
        self._rows: dict[int, tuple[str, str, np.ndarray]] = {}  # key -> (instruction, words, signature)
        self._key_of_words: dict[str, int] = {}
        # kept row -> rows dropped as its near duplicates (the clusters of the batch report)
        self.clusters: dict[int, int] = {}

    def admit(self, key: int, instruction: str) -> NearDuplicate | None:
        text = " ".join(words(instruction))
        if (twin := self._key_of_words.get(text)) is not None:
            return self._duplicate(key, twin, 1.0)
        shingles = char_shingles(text, SHINGLE_CHARS)
        sketch = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=zlib.crc32)
        sketch.update_batch([s.encode() for s in shingles])
        if shingles and (match := self._best_twin(shingles, sketch)):
            return self._duplicate(key, *match)
        if shingles:
            self._lsh.insert(key, sketch, check_duplication=False)
        self._rows[key] = (instruction, text, sketch.hashvalues)
        self._key_of_words[text] = key
        return None

    def remove(self, key: int) -> None:
        row = self._rows.pop(key, None)
        if row is None:
            return
        if key in self._lsh:
            self._lsh.remove(key)
        self._key_of_words.pop(row[1], None)
        self.clusters.pop(key, None)

    def _best_twin(self, shingles: set[str], sketch: MinHash) -> tuple[int, float] | None:
        best: tuple[int, float] | None = None
        for candidate in sorted(self._lsh.query(sketch)):
            _, text, signature = self._rows[candidate]
            if (signature == sketch.hashvalues).mean() < self.threshold - ESTIMATE_MARGIN:
                continue
            similarity = jaccard(shingles, char_shingles(text, SHINGLE_CHARS))
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (candidate, similarity)
        return best

    def _duplicate(self, key: int, twin: int, similarity: float) -> NearDuplicate:
        self.clusters[twin] = self.clusters.get(twin, 0) + 1
        return NearDuplicate(
            index=key, twin=twin, jaccard=similarity,
            reason=f'near duplicate of row {twin} ("{preview(self._rows[twin][0])}") (Jaccard {similarity:.2f})',
        )
