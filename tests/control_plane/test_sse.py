"""Job events as Server-Sent Events: format, Last-Event-ID resume, end after the terminal event."""

from __future__ import annotations

import json
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
    response = api.get("/api/v1/generation-jobs/nope/events/stream/", HTTP_ACCEPT="text/event-stream")
    assert_error_body(response, 404, "NOT_FOUND")
