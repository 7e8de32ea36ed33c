"""The dataset record schema: what one JSONL line may hold, and conversions.

Two formats are accepted, line by line:
- "instruction": the old app's {"instruction", "output"} with optional
  "input" and "system";
- "chat": OpenAI's {"messages": [{"role", "content"}, ...]}, ending with an
  assistant message.
Every row must carry a non-empty answer. Problems are reported by line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from synthtune.errors import InvalidArgument

Format = Literal["instruction", "chat"]
FORMATS: tuple[str, ...] = ("instruction", "chat")
_ROLES = {"system", "user", "assistant"}
MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


@dataclass
class ValidationReport:
    rows: int = 0
    formats: set[str] = field(default_factory=set)
    errors: list[LineError] = field(default_factory=list)

    @property
    def format(self) -> str:
        """"instruction", "chat", or "mixed" when a file holds both."""
        return next(iter(self.formats)) if len(self.formats) == 1 else ("mixed" if self.formats else "")


def row_format(row: Any) -> Format:
    """The format of one parsed row; raises ValueError with a readable reason."""
    if not isinstance(row, dict):
        raise ValueError("each line must be a JSON object")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError('"messages" must be a non-empty list')
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise ValueError(f"messages[{i}] needs a role of system, user or assistant")
            if not isinstance(message.get("content"), str):
                raise ValueError(f"messages[{i}].content must be a string")
        if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
            raise ValueError("the last message must be a non-empty assistant answer")
        if not any(m["role"] == "user" for m in messages):
            raise ValueError("messages need at least one user message")
        return "chat"
    instruction, output = row.get("instruction"), row.get("output")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError('"instruction" must be a non-empty string')
    if not isinstance(output, str) or not output.strip():
        raise ValueError('"output" must be a non-empty string')
    for optional in ("input", "system"):
        if optional in row and not isinstance(row[optional], str):
            raise ValueError(f'"{optional}" must be a string when present')
    return "instruction"


def validate_lines(lines: Iterable[str | bytes]) -> ValidationReport:
    """Check every line; blank lines are skipped, errors kept (the first few) with line numbers."""
    report = ValidationReport()
    error_count = 0
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            report.formats.add(row_format(json.loads(text)))
            report.rows += 1
        except json.JSONDecodeError as exc:
            error_count += 1
            if len(report.errors) < MAX_REPORTED_ERRORS:
                report.errors.append(LineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
        except ValueError as exc:
            error_count += 1
            if len(report.errors) < MAX_REPORTED_ERRORS:
                report.errors.append(LineError(number, str(exc)))
    return report


def require_valid(lines: Iterable[str | bytes], *, field_name: str = "file") -> ValidationReport:
    """Like validate_lines, but raise InvalidArgument listing bad lines, or if there are no rows."""
    report = validate_lines(lines)
    if report.errors:
        listed = "; ".join(f"line {e.line}: {e.message}" for e in report.errors[:5])
        raise InvalidArgument(
            f"{field_name} has {len(report.errors)}{'+' if len(report.errors) >= MAX_REPORTED_ERRORS else ''} "
            f"bad line(s): {listed}",
            field=field_name,
            extra={"errors": [{"line": e.line, "message": e.message} for e in report.errors]},
        )
    if report.rows == 0:
        raise InvalidArgument(f"{field_name} holds no rows.", field=field_name)
    return report


def to_chat(row: dict) -> dict:
    """A row in chat format (chat rows are returned as they are)."""
    if "messages" in row:
        return {"messages": row["messages"]}
    user = row["instruction"] if not row.get("input") else f"{row['instruction']}\n\n{row['input']}"
    messages = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
    return {"messages": messages}


def to_instruction(row: dict) -> dict:
    """A row in the old app's format. Chat rows keep their first system and last user/assistant turn."""
    if "messages" not in row:
        return {k: row[k] for k in ("instruction", "input", "system", "output") if k in row}
    messages = row["messages"]
    out: dict[str, str] = {}
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    out["instruction"] = user
    if system:
        out["system"] = system
    out["output"] = messages[-1]["content"]
    return out


def convert(row: dict, fmt: str) -> dict:
    if fmt == "chat":
        return to_chat(row)
    if fmt == "instruction":
        return to_instruction(row)
    raise InvalidArgument(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.", field="format")


def iter_rows(lines: Iterable[str]) -> Iterator[dict]:
    for text in lines:
        if text.strip():
            yield json.loads(text)
