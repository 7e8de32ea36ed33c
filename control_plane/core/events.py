"""Watch streams seen from the control plane: one stored-event shape for every service.

Each service's module (datasets.datagen, runs.trainer) turns its own message kinds into
plain JSON payloads; seq, type and time are read here, the same way for all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

# A watch stream is one call: bound it, and reconnect (after the last seq) when it ends.
WATCH_DEADLINE_S = 300.0


@dataclass(frozen=True)
class EventRecord:
    seq: int
    type: str
    payload: dict[str, Any]
    time: datetime


def event_kind(event: Message) -> str:
    """The name of the watch message's `kind` oneof that is set ("unknown" if none)."""
    return event.WhichOneof("kind") or "unknown"


def event_record(event: Message, payload: dict[str, Any]) -> EventRecord:
    """A stored-event view of one watch message (with seq, time and a `kind` oneof)."""
    time = event.time.ToDatetime(tzinfo=UTC) if event.HasField("time") else datetime.now(UTC)
    return EventRecord(seq=event.seq, type=event_kind(event), payload=payload, time=time)
