"""Job events as Server-Sent Events: format, Last-Event-ID resume, end after the terminal event."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.control_plane.factories import GenerationJobFactory, JobEventFactory
from tests.control_plane.helpers import assert_error_body

pytestmark = pytest.mark.django_db


def stream_url(job) -> str:
    return f"/api/v1/generation-jobs/{job.job_id}/events/stream/"


def parse_sse(body: str) -> tuple[list[dict], list[str]]:
    """(messages with their fields, comment lines) of an event-stream body."""
    messages, comments = [], []
    for block in body.split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if line.startswith(":"):
                comments.append(line)
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if fields:
            messages.append(fields)
    return messages, comments


def finished_job(events: int = 4):
    job = GenerationJobFactory(state="succeeded", last_seq=events)
    for seq in range(1, events):
        JobEventFactory(job=job, seq=seq, payload={"kept": seq, "dropped": 0, "failed": 0, "target_rows": 3})
    JobEventFactory(job=job, seq=events, type="state_changed", payload={"state": "succeeded", "error": ""})
    return job


def read(api, job, **headers):
    response = api.get(stream_url(job), HTTP_ACCEPT="text/event-stream", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache"
    return parse_sse(b"".join(response.streaming_content).decode())


def test_stream_sends_every_event_with_its_seq_as_id_then_ends(api):
    job = finished_job()
    messages, _ = read(api, job)
    assert messages[0] == {"retry": "1000"}  # reconnect delay for EventSource
    events = messages[1:]
    assert [m["id"] for m in events] == ["1", "2", "3", "4"]
    assert [m["event"] for m in events] == ["progress"] * 3 + ["state_changed"]
    data = [json.loads(m["data"]) for m in events]
    assert data[-1]["payload"] == {"state": "succeeded", "error": ""}
    assert [d["seq"] for d in data] == [1, 2, 3, 4] and all(d["time"] for d in data)


def test_last_event_id_resumes_after_it(api):
    job = finished_job()
    messages, _ = read(api, job, HTTP_LAST_EVENT_ID="2")
    assert [m["id"] for m in messages[1:]] == ["3", "4"]
    messages, _ = read(api, job, QUERY_STRING="after_seq=3")
    assert [m["id"] for m in messages[1:]] == ["4"]


def test_a_finished_job_with_nothing_new_answers_204_so_eventsource_stops(api):
    job = finished_job()
    assert api.get(stream_url(job), HTTP_LAST_EVENT_ID="4").status_code == 204


def test_an_unfinished_job_streams_what_there_is_then_ends_after_the_time_limit(api, cp_settings):
    cp_settings.SYNTHTUNE_SSE_MAX_S = 0.4
    job = GenerationJobFactory(state="running", last_seq=2)
    JobEventFactory(job=job, seq=1, type="state_changed", payload={"state": "running", "error": ""})
    JobEventFactory(job=job, seq=2)
    started = time.monotonic()
    messages, _ = read(api, job)
    assert [m["id"] for m in messages[1:]] == ["1", "2"]
    assert time.monotonic() - started >= 0.4  # it polled for more before handing over to a reconnect


def test_bad_resume_points_and_unknown_jobs_are_errors_in_the_one_body(api):
    job = finished_job()
    body = assert_error_body(api.get(stream_url(job), HTTP_LAST_EVENT_ID="abc"), 400, "INVALID_ARGUMENT")
    assert body["extra"]["field"] == "after_seq"
    assert_error_body(api.get(stream_url(job), {"after_seq": "-1"}), 400, "INVALID_ARGUMENT")
    # A bad after_seq is refused also when Last-Event-ID wins, and after_seq comes once.
    assert_error_body(api.get(stream_url(job), {"after_seq": "null"}, HTTP_LAST_EVENT_ID="0"), 400, "INVALID_ARGUMENT")
    assert_error_body(api.get(stream_url(job) + "?after_seq=1&after_seq=1"), 400, "INVALID_ARGUMENT")
    assert_error_body(api.get(stream_url(job), HTTP_LAST_EVENT_ID=""), 400, "INVALID_ARGUMENT")
    response = api.get("/api/v1/generation-jobs/nope/events/stream/", HTTP_ACCEPT="text/event-stream")
    assert_error_body(response, 404, "NOT_FOUND")


class _Row:
    """A stand-in for a job row in core.sse's watch: last_seq and state, as the worker sets them."""

    def __init__(self) -> None:
        self.events: list = []
        self.finished = False


def test_streams_of_one_job_share_each_lookup_and_fetch_and_the_poller_role_moves_on(monkeypatch):
    """The watch, alone (no DB: its one lookup is replaced): 12 waiters on one job and 1 on
    another get every event once, in order; each poll is one lookup for all and one fetch per
    moved job, not one per waiter; when the poller's own job moves, another waiter polls on."""
    from control_plane.core import sse

    rows = {("job", "a"): _Row(), ("job", "b"): _Row()}
    lookups, fetches = [], []

    def look_up(keys):
        lookups.append(sorted(k[1] for k in keys))
        return {k: (len(rows[k].events), rows[k].finished) for k in keys}

    def fetcher(key):
        def fetch_after(seq):
            fetches.append(key[1])
            return [e for e in rows[key].events if e.seq > seq]
        return fetch_after

    monkeypatch.setattr(sse, "_look_up", look_up)
    watch = sse._Watch()
    got: dict[int, list[int]] = {}

    def follow(number: int, key) -> None:
        seen, after = [], 0
        while True:
            moved = watch.wait(key, after_seq=after, fetch_after=fetcher(key), timeout_s=10, poll_s=0.01)
            assert moved is not None, f"waiter {number} timed out after {seen}"
            seen += [seq for seq, _ in moved.messages]
            after = seen[-1] if seen else after
            if moved.finished and moved.last_seq <= after:
                got[number] = seen
                return

    class Event:
        def __init__(self, seq: int) -> None:
            self.seq, self.type = seq, "progress"

        def as_dict(self) -> dict:
            return {"seq": self.seq}

    threads = [threading.Thread(target=follow, args=(n, ("job", "a"))) for n in range(12)]
    threads.append(threading.Thread(target=follow, args=(12, ("job", "b"))))
    for thread in threads:
        thread.start()
    for seq in range(1, 6):  # job a moves five times; job b only at the end
        time.sleep(0.05)
        rows[("job", "a")].events.append(Event(seq))
    rows[("job", "a")].finished = True
    time.sleep(0.1)
    assert threads[-1].is_alive() and not any(t.is_alive() for t in threads[:-1])  # b still waits
    rows[("job", "b")].events.append(Event(1))
    rows[("job", "b")].finished = True
    for thread in threads:
        thread.join(10)
    assert got == {**{n: [1, 2, 3, 4, 5] for n in range(12)}, 12: [1]}
    assert all(keys == sorted(set(keys)) for keys in lookups)  # a job once per lookup, however many wait
    assert fetches.count("a") <= 8 and fetches.count("b") == 1  # per move (a poll may split one), not per waiter
    assert ["b"] in lookups  # after job a's waiters left, b's waiter polled on its own
