"""A job's numbered, append-only event log on disk, with live waiting.

Long work (a generation job, a training run) is a job plus a watch stream.
Events are numbered from 1 and never renumbered, so a watcher that reconnects
with `after_seq` loses nothing. Each event is one flushed JSONL line; a torn
last line after a crash is cut off on load (synthtune.jsonl.recover).
One asyncio loop owns a log; it is not thread-safe.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthtune import jsonl
from synthtune.errors import InvalidArgument


@dataclass(frozen=True)
class Event:
    seq: int
    time: datetime
    kind: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time.isoformat(), "kind": self.kind, "data": self.data}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Event:
        return cls(int(item["seq"]), datetime.fromisoformat(item["time"]), str(item["kind"]), dict(item["data"]))


def _check(item: Any) -> None:
    try:
        Event.from_json(item)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an event: {exc}") from None


class EventLog:
    def __init__(self, path: Path):
        self.path = path
        self._events = [Event.from_json(item) for item in jsonl.recover(path, check=_check)]
        self._changed = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self._events[-1].seq if self._events else 0

    def after(self, seq: int) -> list[Event]:
        """Events with seq > `seq` (seqs are 1..n, so that is a slice)."""
        return self._events[max(seq, 0):]

    def append(self, kind: str, data: dict[str, Any]) -> Event:
        """Number, persist (flushed) and publish one event."""
        event = Event(self.last_seq + 1, datetime.now(UTC), kind, data)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
        self._events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()
        return event

    async def wait(self, *, after_seq: int, timeout_s: float) -> None:
        """Return when an event beyond `after_seq` exists, or after `timeout_s`."""
        if self.last_seq > after_seq:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            pass


async def follow(log: EventLog, *, after_seq: int, finished: Callable[[], bool],
                 poll_s: float = 1.0) -> AsyncIterator[Event]:
    """Events after `after_seq`, then live ones; ends once caught up with a finished job."""
    if after_seq < 0:
        raise InvalidArgument("after_seq must be 0 or more.", field="after_seq")
    seq = after_seq
    while True:
        events = log.after(seq)
        for event in events:
            yield event
            seq = event.seq
        if not events:
            if finished():
                return
            await log.wait(after_seq=seq, timeout_s=poll_s)
