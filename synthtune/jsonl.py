"""Append-only JSONL files that survive a crash mid-line.

A process killed while writing leaves at most one torn last line. `recover`
keeps the longest prefix of complete, valid lines and cuts the rest off, so
appending afterwards never glues a new line onto garbage.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def recover(path: Path, *, check: Callable[[Any], object] | None = None) -> list[Any]:
    """Parsed objects of the valid prefix of `path` (missing file: []); truncates anything after it.

    `check(obj)` may raise ValueError to declare a line invalid (and end the prefix there).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    items: list[Any] = []
    good = 0
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            break  # no newline: the last write never finished
        line = data[start:end]
        if line.strip():
            try:
                item = json.loads(line)
                if check is not None:
                    check(item)
            except ValueError:
                break
            items.append(item)
        start = good = end + 1
    if good < len(data):
        logger.warning(
            "cut a torn tail off a JSONL file", extra={"file": path.name, "bytes": len(data) - good}
        )
        with path.open("r+b") as handle:
            handle.truncate(good)
            handle.flush()
            os.fsync(handle.fileno())
    return items


def count_rows(path: Path) -> int:
    """Non-blank lines of a finished file (read only: never truncates)."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


class Appender:
    """Append one JSON object per line, flushed to the OS at once so a crash loses nothing written."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = path.open("a", encoding="utf-8")

    def append(self, item: Any) -> None:
        self._handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Flush, fsync and close; safe to call twice."""
        if self._handle.closed:
            return
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        finally:
            self._handle.close()  # even when the flush fails (a full disk): no file left open
