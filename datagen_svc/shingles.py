"""The units the quality filters compare: normalised words, character shingles, word n-grams.

Both filters (near_dup, decontam) read text the way quality.normalise_instruction
does (NFKC, case-folded, whitespace collapsed) and then drop prose punctuation, so
"How do I sort a list?" and "how do i sort a list" are the same words. Symbols that
carry meaning in code and maths (+ * / = < > % $ # & ^ | ~ @) stay, so "2+2" and
"2*2", or "C++" and "C", remain different.
"""

from __future__ import annotations

import re

from datagen_svc.quality import normalise_instruction

# Everything that is neither a word character, whitespace nor a meaningful symbol.
_PROSE_PUNCTUATION_RE = re.compile(r"[^\w\s+*/=<>%$#&^|~@]")


def words(text: str) -> list[str]:
    """The normalised words of `text`, in order; [] when it has none."""
    return _PROSE_PUNCTUATION_RE.sub(" ", normalise_instruction(text)).split()


def char_shingles(text: str, size: int) -> set[str]:
    """Every `size`-character substring of `text`; a shorter non-empty text is its own shingle."""
    if len(text) <= size:
        return {text} if text else set()
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def word_ngrams(tokens: list[str], n: int) -> set[str]:
    """Every run of `n` consecutive tokens, joined by a space; empty when there are fewer than n."""
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 1.0 for two empty sets."""
    if not a and not b:
        return 1.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


def preview(text: str, limit: int = 60) -> str:
    """`text` on one line, cut to `limit` characters, for reasons people read."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
