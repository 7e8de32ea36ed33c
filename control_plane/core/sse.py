"""Server-Sent Events fed by stored job events.

Each response polls the DB for a while and then ends; the browser's EventSource
reconnects with Last-Event-ID (the last `id:` it saw, our seq), so nothing is lost
and no server thread is held forever. A finished job's stream ends after its last
event, and a reconnect after that gets 204, which tells EventSource to stop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from control_plane.core.errors import InvalidArgument

RECONNECT_MS = 1000
KEEPALIVE_S = 10.0


class StoredEvent(Protocol):
    """A stored job event (JobEvent, and later RunEvent)."""

    seq: int
    type: str

    def as_dict(self) -> dict[str, Any]: ...


def sse_message(*, data: Any, seq: int | None = None, event: str | None = None) -> str:
    lines = []
    if seq is not None:
        lines.append(f"id: {seq}")
    if event:
        lines.append(f"event: {event}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")  # one line: JSON escapes newlines
    return "\n".join(lines) + "\n\n"


def resume_point(request) -> int:
    """Where to start: Last-Event-ID (EventSource reconnects) or ?after_seq= (first connect)."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("after_seq") or "0"
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidArgument(
            f"Last-Event-ID / after_seq must be a whole number >= 0, not {raw[:40]!r}.", field="after_seq"
        )
    return value


def event_stream(
    *,
    fetch_after: Callable[[int], Sequence[StoredEvent]],
    finished: Callable[[], bool],
    after_seq: int,
    poll_s: float,
    max_s: float,
) -> Iterator[str]:
    """Messages for events after `after_seq`, until the job is finished or `max_s` passes."""
    yield f"retry: {RECONNECT_MS}\n\n"
    deadline = time.monotonic() + max_s
    last_sent = time.monotonic()
    while True:
        # Read "finished" before the events: the worker stores a job's last event and its
        # final state in one transaction, so if it was finished then, nothing comes later.
        done = finished()
        events = fetch_after(after_seq)
        for event in events:
            yield sse_message(data=event.as_dict(), seq=event.seq, event=event.type)
            after_seq = event.seq
        now = time.monotonic()
        if events:
            last_sent = now
            continue
        if done or now >= deadline:
            return
        if now - last_sent >= KEEPALIVE_S:
            yield ": keep-alive\n\n"  # a comment line: keeps proxies from closing an idle stream
            last_sent = now
        time.sleep(poll_s)


def sse_response(stream: Iterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx and friends: don't buffer the stream
    return response


def stream_response(
    request,
    *,
    finished_now: bool,
    last_seq: int,
    fetch_after: Callable[[int], Sequence[StoredEvent]],
    finished: Callable[[], bool],
) -> HttpResponse:
    """The SSE answer for a job or run: 204 once it is over and every event was sent, else a stream."""
    after_seq = resume_point(request)
    if finished_now and last_seq <= after_seq:
        return HttpResponse(status=204)
    stream = event_stream(
        fetch_after=fetch_after,
        finished=finished,
        after_seq=after_seq,
        poll_s=settings.SYNTHTUNE_SSE_POLL_S,
        max_s=settings.SYNTHTUNE_SSE_MAX_S,
    )
    return sse_response(stream)


def stream_schema(*, operation_id: str, subject: str):
    """The OpenAPI description shared by every events/stream/ endpoint."""
    return extend_schema(
        operation_id=operation_id,
        parameters=[
            OpenApiParameter("after_seq", int, description="Start after this seq (first connect)."),
            OpenApiParameter("Last-Event-ID", int, OpenApiParameter.HEADER, description="Set by EventSource."),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="`id:` is the seq, `event:` the type, `data:` the event as JSON."
            ),
            204: OpenApiResponse(description=f"The {subject} is finished and every event was sent: stop."),
            404: OpenApiResponse(description='Error body: {"message", "code", "extra"}'),
        },
    )
