"""JSON objects inside a model's reply: fenced, after prose, several in a row.

Shared by the LLM judges (datagen's row judge, the serving proxy's comparison judge):
small models wrap their JSON in prose or code fences, and structured-output backends
let raw control characters into strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every top-level JSON object in `text`, in order; what isn't JSON is skipped."""
    # strict=False: some structured-output backends (xgrammar) let raw control characters into strings.
    decoder = json.JSONDecoder(strict=False)
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            yield value
        position = text.find("{", end)


__all__ = ["json_objects"]
