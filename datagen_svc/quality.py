"""Row quality checks: duplicate instructions, empty outputs, and the row schema.

Every rejected row gets a short reason that is shown to people and stored in
the job's event log.
"""

from __future__ import annotations

import re
import unicodedata

from synthtune import records

DUPLICATE_INSTRUCTION = "duplicate instruction"
EMPTY_OUTPUT = "empty output"
WHITESPACE_OUTPUT = "whitespace-only output"

_SPACE_RE = re.compile(r"\s+")


def normalise_instruction(text: str) -> str:
    """The form two instructions are compared in: NFKC, case-folded, whitespace collapsed."""
    return _SPACE_RE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


class Deduper:
    """Remembers normalised instructions; `admit` says whether one is new (and records it)."""

    def __init__(self, seen: set[str] | None = None):
        self._seen: set[str] = set(seen or ())

    def __contains__(self, instruction: str) -> bool:
        return normalise_instruction(instruction) in self._seen

    def admit(self, instruction: str) -> bool:
        key = normalise_instruction(instruction)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def forget(self, instruction: str) -> None:
        """Let an instruction be tried again (its row failed, so nothing was kept for it)."""
        self._seen.discard(normalise_instruction(instruction))


def output_problem(output: str | None) -> str | None:
    """Why an output cannot be kept, or None when it can."""
    if not output:
        return EMPTY_OUTPUT
    if not output.strip():
        return WHITESPACE_OUTPUT
    return None


def make_row(*, instruction: str, output: str, system: str = "") -> dict[str, str]:
    """A row in the records.py "instruction" format; raises ValueError if it would be invalid."""
    row = {"instruction": instruction.strip()}
    if system:
        row["system"] = system
    row["output"] = output.strip()
    records.row_format(row)  # the schema every consumer checks; never write what it rejects
    return row
