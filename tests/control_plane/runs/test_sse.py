"""Run events as Server-Sent Events: format, Last-Event-ID resume, the end after the terminal event."""

from __future__ import annotations

import json
import time

import pytest

from tests.control_plane.helpers import assert_error_body
from tests.control_plane.runs.factories import RunEventFactory, RunFactory
from tests.control_plane.test_sse import parse_sse

pytestmark = pytest.mark.django_db


def stream_url(run) -> str:
    return f"/api/v1/runs/{run.run_id}/events/stream/"


def finished_run():
    run = RunFactory(state="succeeded", last_seq=5, step=3, max_steps=3)
    RunEventFactory(run=run, seq=1, type="state_changed", payload={"state": "running", "error": ""})
    for seq in (2, 3):
        RunEventFactory(run=run, seq=seq)
    RunEventFactory(run=run, seq=4, type="eval", payload={"step": 3, "epoch": 1.0, "eval_loss": 2.0})
    RunEventFactory(run=run, seq=5, type="state_changed", payload={"state": "succeeded", "error": ""})
    return run


def read(api, run, **headers):
    response = api.get(stream_url(run), HTTP_ACCEPT="text/event-stream", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache"
    return parse_sse(b"".join(response.streaming_content).decode())[0]


def test_stream_sends_every_event_with_its_seq_and_type_then_ends(api):
    messages = read(api, finished_run())
    assert messages[0] == {"retry": "1000"}
    assert [m["id"] for m in messages[1:]] == ["1", "2", "3", "4", "5"]
    assert [m["event"] for m in messages[1:]] == ["state_changed", "step", "step", "eval", "state_changed"]
    data = [json.loads(m["data"]) for m in messages[1:]]
    assert data[1]["payload"]["loss"] == pytest.approx(2.8) and data[3]["payload"]["eval_loss"] == 2.0
    assert data[-1]["payload"] == {"state": "succeeded", "error": ""}


def test_last_event_id_and_after_seq_resume_after_it(api):
    run = finished_run()
    assert [m["id"] for m in read(api, run, HTTP_LAST_EVENT_ID="3")[1:]] == ["4", "5"]
    assert [m["id"] for m in read(api, run, QUERY_STRING="after_seq=4")[1:]] == ["5"]


def test_a_finished_run_with_nothing_new_answers_204(api):
    assert api.get(stream_url(finished_run()), HTTP_LAST_EVENT_ID="5").status_code == 204


def test_an_unfinished_run_streams_what_there_is_then_ends_after_the_time_limit(api, cp_settings):
    cp_settings.SYNTHTUNE_SSE_MAX_S = 0.4
    run = RunFactory(state="running", last_seq=2)
    RunEventFactory(run=run, seq=1, type="state_changed", payload={"state": "running", "error": ""})
    RunEventFactory(run=run, seq=2)
    started = time.monotonic()
    assert [m["id"] for m in read(api, run)[1:]] == ["1", "2"]
    assert time.monotonic() - started >= 0.4


def test_bad_resume_points_and_unknown_runs_are_errors_in_the_one_body(api):
    run = finished_run()
    body = assert_error_body(api.get(stream_url(run), HTTP_LAST_EVENT_ID="x"), 400, "INVALID_ARGUMENT")
    assert body["extra"]["field"] == "after_seq"
    response = api.get("/api/v1/runs/nope/events/stream/", HTTP_ACCEPT="text/event-stream")
    assert_error_body(response, 404, "NOT_FOUND")
