"""Server-Sent Events fed by stored job events.

Each response polls the DB for a while and then ends; the browser's EventSource
reconnects with Last-Event-ID (the last `id:` it saw, our seq), so nothing is lost
and no server thread is held forever. A finished job's stream ends after its last
event, and a reconnect after that gets 204, which tells EventSource to stop.

Between events a stream waits in WATCH, which looks up every open stream's job or run of this
process in one query per model each poll: a hundred open streams cost the DB one small query per
poll, not two each, and sleep without taking CPU from the API calls (under load the per-stream
polls held the GIL and the DB so much that list calls waited seconds).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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


class Subject(Protocol):
    """What a stream follows (GenerationJob, Run): a row whose last_seq and state the worker
    updates in the same transaction as it stores each event."""

    pk: Any
    last_seq: int
    state: str
    TERMINAL_STATES: Sequence[str]


Key = tuple[type, Any]  # (model, pk)
Fetch = Callable[[int], Sequence[StoredEvent]]
Message = tuple[int, str]  # (seq, the SSE text that sends it)


@dataclass(frozen=True)
class Moved:
    """What a waiter is woken with: its subject's last_seq and whether it is finished (one row,
    read together), and the messages past the waiter's after_seq fetched for it (maybe not all)."""

    last_seq: int
    finished: bool
    messages: list[Message]


@dataclass(eq=False)
class _Waiter:
    after_seq: int
    fetch_after: Fetch
    wake: threading.Event = field(default_factory=threading.Event)
    moved: Moved | None = None


def event_message(event: StoredEvent) -> Message:
    return event.seq, sse_message(data=event.as_dict(), seq=event.seq, event=event.type)


def _look_up(keys: Sequence[Key]) -> dict[Key, tuple[int, bool]]:
    """(last_seq, finished) of each key, one query per model; a row that is gone is finished."""
    by_model: dict[type, list[Any]] = defaultdict(list)
    for model, pk in keys:
        by_model[model].append(pk)
    found: dict[Key, tuple[int, bool]] = {}
    for model, pks in by_model.items():
        rows = model.objects.filter(pk__in=pks).values_list("pk", "last_seq", "state")
        for pk, last_seq, state in rows:
            found[(model, pk)] = (last_seq, state in model.TERMINAL_STATES)
    return {key: found.get(key, (0, True)) for key in keys}


class _Watch:
    """Open streams wait here for their subject to move. One waiting thread at a time is the
    poller: every poll_s it looks up all the subjects waited on (one query per model), fetches
    and renders a moved subject's new events once for all its waiters, and wakes only those; the
    others sleep on their own Event. When the poller's own subject moves it hands the role to
    another waiter. The poller queries on its own request thread's connection, so a stream sees
    what its request would (in tests, the test's transaction too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[Key, list[_Waiter]] = defaultdict(list)
        self._polling = False

    def wait(
        self, key: Key, *, after_seq: int, fetch_after: Fetch, timeout_s: float, poll_s: float
    ) -> Moved | None:
        """Once the subject's last_seq passes after_seq or it is finished, what moved; None after
        timeout_s without either."""
        waiter = _Waiter(after_seq, fetch_after)
        until = time.monotonic() + timeout_s
        with self._lock:
            self._waiters[key].append(waiter)
        try:
            while waiter.moved is None and time.monotonic() < until:
                with self._lock:
                    poller = not self._polling
                    self._polling = True
                if poller:
                    self._poll_until(waiter, until, poll_s)
                else:
                    waiter.wake.wait(max(0.0, until - time.monotonic()))
                    waiter.wake.clear()
            return waiter.moved
        finally:
            with self._lock:
                self._waiters[key].remove(waiter)
                if not self._waiters[key]:
                    del self._waiters[key]

    def _poll_until(self, mine: _Waiter, until: float, poll_s: float) -> None:
        try:
            while mine.moved is None:
                self._poll_once()
                left = until - time.monotonic()
                if mine.moved is not None or left <= 0:
                    return
                time.sleep(min(poll_s, left))
        finally:
            with self._lock:
                self._polling = False
                # Hand over: wake one waiter still waiting; it finds no poller and becomes it.
                heir = next((w for ws in self._waiters.values() for w in ws if w.moved is None), None)
                if heir is not None:
                    heir.wake.set()

    def _poll_once(self) -> None:
        with self._lock:
            keys = list(self._waiters)
        states = _look_up(keys)
        work: list[tuple[int, bool, list[_Waiter]]] = []
        with self._lock:
            for key, (last_seq, finished) in states.items():
                woken = [w for w in self._waiters.get(key, ())
                         if w.moved is None and (finished or last_seq > w.after_seq)]
                if woken:
                    work.append((last_seq, finished, woken))
        for last_seq, finished, woken in work:
            first = min(w.after_seq for w in woken)
            # Events up to last_seq are stored (the worker wrote them with it): fetched once for all.
            messages = [event_message(e) for e in woken[0].fetch_after(first)] if last_seq > first else []
            with self._lock:
                for waiter in woken:
                    waiter.moved = Moved(last_seq, finished, [m for m in messages if m[0] > waiter.after_seq])
                    waiter.wake.set()


WATCH = _Watch()


def sse_message(*, data: Any, seq: int | None = None, event: str | None = None) -> str:
    lines = []
    if seq is not None:
        lines.append(f"id: {seq}")
    if event:
        lines.append(f"event: {event}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")  # one line: JSON escapes newlines
    return "\n".join(lines) + "\n\n"


def resume_point(request) -> int:
    """Where to start: Last-Event-ID (EventSource reconnects) or ?after_seq= (first connect).
    Each one given is checked, also when the header wins: a bad after_seq is a 400 either way
    (found by the contract test), as is after_seq given twice."""
    values = request.GET.getlist("after_seq")
    if len(values) > 1:
        raise InvalidArgument("after_seq: give this parameter once.", field="after_seq")
    after = _seq(values[0]) if values else 0
    header = request.headers.get("Last-Event-ID")  # an empty one is bad too (EventSource sends none)
    return _seq(header) if header is not None else after


def _seq(raw: str) -> int:
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
    fetch_after: Fetch,
    subject: Subject,
    after_seq: int,
    poll_s: float,
    max_s: float,
) -> Iterator[str]:
    """Messages for events after `after_seq`, until the subject is finished or `max_s` passes."""
    yield f"retry: {RECONNECT_MS}\n\n"
    key = (type(subject), subject.pk)
    deadline = time.monotonic() + max_s
    last_sent = time.monotonic()
    messages = [event_message(e) for e in fetch_after(after_seq)]  # what is there already
    while True:
        for seq, text in messages:
            yield text
            after_seq = seq
        now = time.monotonic()
        if messages:
            last_sent = now
        if now >= deadline:
            return
        wake_at = min(deadline, last_sent + KEEPALIVE_S)
        moved = WATCH.wait(key, after_seq=after_seq, fetch_after=fetch_after, timeout_s=wake_at - now, poll_s=poll_s)
        if moved is None:
            if time.monotonic() >= deadline:
                return
            yield ": keep-alive\n\n"  # a comment line: keeps proxies from closing an idle stream
            last_sent = time.monotonic()
            messages = []
            continue
        messages = moved.messages
        # last_seq and the state come from one row, which the worker updates in the transaction
        # that stores each event: finished with every event up to last_seq sent, nothing comes later.
        if moved.finished and moved.last_seq <= (messages[-1][0] if messages else after_seq):
            for _, text in messages:
                yield text
            return


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
    subject: Subject,
) -> HttpResponse:
    """The SSE answer for a job or run: 204 once it is over and every event was sent, else a stream."""
    after_seq = resume_point(request)
    if finished_now and last_seq <= after_seq:
        return HttpResponse(status=204)
    stream = event_stream(
        fetch_after=fetch_after,
        subject=subject,
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
