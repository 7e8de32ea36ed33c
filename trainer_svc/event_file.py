"""A run's raw child events as a file in the run folder, for training that runs in other pods.

Under the kubeflow launcher world rank 0 trains in another pod, so there is no pipe to the
service: it appends its JSON events to `<run_dir>/child-events.jsonl` on the shared volume and
the service reads them from a byte offset. Each event is opened, appended and closed: on NFS
a close is what makes the bytes visible to a reader on another machine (close-to-open).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHILD_EVENTS_FILE = "child-events.jsonl"


def append_event(path: Path, event: dict[str, Any]) -> None:
    """Append one event as one line; the file is closed before this returns."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")


def read_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete lines after byte `offset`, parsed, and the offset after the last of them.

    A line still being written (no newline yet) is left for the next read; a missing file
    reads as empty (node 0 has not started). A line that is not JSON is skipped: one torn
    write must not stop a run from being followed.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    complete = data[:data.rfind(b"\n") + 1]
    events = []
    for line in complete.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, offset + len(complete)
