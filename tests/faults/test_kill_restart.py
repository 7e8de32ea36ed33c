"""SIGKILL a process of the running stack mid-job, restart it, and check what the control plane
says afterwards: nothing lost, nothing twice, a state that is true.

The package's one stack (tests/faults/conftest.py), a fake teacher on loopback.
What the services do on their own after a crash is proved where they live, not again here:
- datagen_svc killed mid-job: the job is interrupted, its rows kept, a resume completes it
  (tests/datagen_svc/test_lifecycle.py::test_a_crash_mid_job_reports_interrupted_and_resume_completes);
- trainer_svc killed mid-run, and its training process killed: the run resumes from its checkpoint
  (tests/trainer_svc/test_resume.py, tests/trainer_svc/test_service.py);
- the worker with its service down, then back: it catches up (tests/control_plane/test_worker.py).
Here each crash is seen through the control plane, with the worker following the streams; the
serving proxy, which keeps no jobs of its own, is killed mid-batch-comparison (its vLLM a paced
fake): the client gets an error event, no half comparison is recorded, and after the restart the
same batch works.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.faults.helpers import (
    INSTRUCTIONS,
    TEACHER_TOKEN,
    assert_dataset_whole,
    assert_events_whole,
    generate,
    job,
    run_ended,
    start_run,
    wait_for,
)
from tests.trainer_svc.conftest import fixed_answer_rows
from trainer_svc.checkpoints import latest_checkpoint

pytestmark = pytest.mark.slow


def test_the_worker_killed_mid_job_catches_up_after_a_restart(api, stack, teacher):
    job_id = generate(api, teacher, "worker-killed")
    wait_for(lambda: job(api, job_id)["kept"] >= 3, what="the worker to store some progress")
    stack.stack.kill("worker")
    stored = job(api, job_id)
    assert stored["state"] == "running"
    time.sleep(1)  # the job goes on without anyone following it
    stack.stack.restart("worker")

    done = wait_for(lambda: (j := job(api, job_id))["state"] == "succeeded" and j, what="the job to succeed")
    assert done["kept"] == len(INSTRUCTIONS) and done["last_seq"] > stored["last_seq"]
    assert_events_whole(api, f"/api/v1/generation-jobs/{job_id}/events/", done["last_seq"])
    assert_dataset_whole(api, stack, "worker-killed")


def test_datagen_killed_mid_job_is_failed_truthfully_and_resumes_to_the_end(api, stack, teacher):
    job_id = generate(api, teacher, "datagen-killed")
    wait_for(lambda: job(api, job_id)["kept"] >= 3, what="some rows")
    stack.stack.kill("datagen")
    stack.stack.restart("datagen")

    failed = wait_for(lambda: (j := job(api, job_id))["state"] == "failed" and j, what="the job to be failed")
    assert "interrupted" in failed["error"] and 3 <= failed["kept"] < len(INSTRUCTIONS), failed
    dataset = api.get("/api/v1/datasets/datagen-killed/").json()
    assert dataset["status"] != "ready"  # nothing half-written published
    datasets = stack.stack.config.data_root / "datasets"
    assert not (datasets / "datagen-killed.jsonl").exists()
    kept_on_disk = (datasets / "datagen-killed.jsonl.partial").read_text().splitlines()
    assert failed["kept"] == len(kept_on_disk)  # rows written after the last progress event count too

    teacher.wait_quiet(0.5)
    calls = len(teacher.chat_requests())
    resumed = api.post(f"/api/v1/generation-jobs/{job_id}/resume/", json={"token": TEACHER_TOKEN})
    assert resumed.status_code == 202, resumed.text
    done = wait_for(lambda: (j := job(api, job_id))["state"] == "succeeded" and j, what="the resumed job")
    assert len(teacher.chat_requests()) - calls == len(INSTRUCTIONS) - failed["kept"]  # none asked twice
    assert_events_whole(api, f"/api/v1/generation-jobs/{job_id}/events/", done["last_seq"])
    assert_dataset_whole(api, stack, "datagen-killed")


def test_the_trainer_killed_mid_run_resumes_from_its_checkpoint(api, stack):
    rows = fixed_answer_rows(30)
    uploaded = api.post("/api/v1/datasets/", json={"name": "fixed", "rows": rows})
    assert uploaded.status_code == 201, uploaded.text
    run_id = start_run(api, "fixed", "killed", epochs=2)
    checkpoints = stack.stack.config.data_root / "runs" / run_id / "checkpoints"
    # A whole one (trainer_state.json written last), as the trainer's resume looks for: killed while
    # the first is still being written, the run has nothing to resume from and is failed instead.
    wait_for(lambda: latest_checkpoint(checkpoints), what="a whole checkpoint",
             timeout_s=120)
    stack.stack.kill("trainer")  # its training process dies with it
    stack.stack.restart("trainer")

    done = run_ended(api, run_id)
    assert done["state"] == "succeeded", done["error"]
    assert done["resumes"] == 1 and done["resumed_from_step"] >= 10 and done["step"] == done["max_steps"] == 60
    events = assert_events_whole(api, f"/api/v1/runs/{run_id}/events/")
    kinds = [e["type"] for e in events]
    assert kinds.count("resumed") == 1 and kinds.count("exported") == 1
    assert max(e["payload"]["step"] for e in events if e["type"] == "step") == 60
    adapter = api.get(f"/api/v1/adapters/{done['adapter']}/").json()
    assert adapter["run"] == run_id


@pytest.fixture
def adapter(api) -> str:
    """An exported adapter: one the package's trainer tests made, else one short run's."""
    listed = api.get("/api/v1/adapters/").json()["results"]
    if listed:
        return listed[0]["name"]
    api.post("/api/v1/datasets/", json={"name": "for-adapter", "rows": fixed_answer_rows(8)})
    done = run_ended(api, start_run(api, "for-adapter", "for-compare", epochs=1))
    assert done["state"] == "succeeded", done["error"]
    return done["adapter"]


def sse_events(reply) -> list[tuple[str, dict]]:
    events, kind = [], None
    for line in reply.iter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind:
            events.append((kind, json.loads(line.removeprefix("data: "))))
            yield events
            kind = None


def test_the_serving_proxy_killed_mid_batch_is_an_error_event_and_records_nothing(api, stack, vllm, adapter):
    adapters = (stack.stack.config.data_root / "adapters").resolve()
    vllm.models = [{"id": "tiny-phi3", "root": "/models/tiny-phi3"},
                   {"id": adapter, "root": f"{adapters}/{adapter}", "parent": "tiny-phi3"}]  # loaded
    vllm.latency_s = 0.3
    api.post("/api/v1/datasets/", json={"name": "to-compare", "rows": fixed_answer_rows(10)})
    recorded = api.get("/api/v1/comparisons/").json()["count"]
    body = {"adapter": adapter, "dataset": "to-compare", "limit": 10}
    events: list[tuple[str, dict]] = []
    try:
        with api.stream("POST", "/api/v1/compare/batch/", json=body, headers={"Accept": "text/event-stream"}) as reply:
            assert reply.status_code == 200, reply.read()
            for events in sse_events(reply):
                if len(events) == 1:
                    stack.stack.kill("serving-proxy")  # mid-batch: one row compared, nine to go
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "row" and kinds[-1] == "error" and "summary" not in kinds, kinds
        error = events[-1][1]
        assert error["code"] == "UNAVAILABLE" and "serving" in error["message"], error
        assert api.get("/api/v1/comparisons/").json()["count"] == recorded  # no half comparison recorded
    finally:
        stack.stack.restart("serving-proxy")
    again = api.post("/api/v1/compare/batch/", json=body)
    assert again.status_code == 200, again.text
    assert len(again.json()["rows"]) == 10 and api.get("/api/v1/comparisons/").json()["count"] == recorded + 1
    vllm.latency_s = 0.0
