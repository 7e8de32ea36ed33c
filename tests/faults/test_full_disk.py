"""A full disk under the data root: datasets/ and adapters/ are small tmpfs mounts
(tests/faults/conftest.py), filled to the last few bytes. Every write that finds no room fails
clearly (HTTP 507, a job or run failed with a reason that says what to do), publishes no
half-written file and loses nothing written before; once there is room, the same work succeeds.
"""

from __future__ import annotations

import pytest

from tests.conftest import require_system_dep
from tests.faults.helpers import (
    INSTRUCTIONS,
    TEACHER_TOKEN,
    assert_dataset_whole,
    assert_events_whole,
    disk_full,
    files_under,
    generate,
    job,
    run_ended,
    start_run,
    wait_for,
)
from tests.trainer_svc.conftest import fixed_answer_rows

pytestmark = pytest.mark.slow


@pytest.fixture
def datasets(small_disks, stack):
    root, reason = small_disks
    require_system_dep(reason is None, f"no small tmpfs for a full disk: {reason}")
    return root / "datasets"


def test_an_upload_onto_a_full_disk_is_507_and_leaves_nothing(api, datasets):
    rows = [{"instruction": f"Question {i}?", "output": "x" * 200} for i in range(200)]  # about 45 KB
    before = files_under(datasets)
    with disk_full(datasets, leave_bytes=8192):
        refused = api.post("/api/v1/datasets/", json={"name": "too-big", "rows": rows})
        assert refused.status_code == 507, refused.text
        body = refused.json()
        assert body["code"] == "RESOURCE_EXHAUSTED" and "space" in body["message"], body
        assert files_under(datasets) == before  # no file, no temp file
        assert api.get("/api/v1/datasets/too-big/").status_code == 404  # no row either
    stored = api.post("/api/v1/datasets/", json={"name": "too-big", "rows": rows})
    assert stored.status_code == 201, stored.text


def test_a_new_version_or_a_merge_onto_a_full_disk_is_507_and_leaves_nothing(api, datasets):
    rows = [{"instruction": f"Question {i}?", "output": "x" * 200} for i in range(120)]  # about 27 KB
    for name, part in (("part-a", rows[:60]), ("part-b", rows[60:])):
        assert api.post("/api/v1/datasets/", json={"name": name, "rows": part}).status_code == 201
    before = files_under(datasets)
    with disk_full(datasets, leave_bytes=8192):
        calls = {
            "a version": ("/api/v1/datasets/part-a/versions/", {"name": "part-a-all", "rows": rows}),
            "a merge": ("/api/v1/dataset-merges/", {"sources": ["part-a", "part-b"], "name": "merged"}),
        }
        for what, (url, body) in calls.items():
            refused = api.post(url, json=body)
            assert refused.status_code == 507, (what, refused.text)
            error = refused.json()
            assert error["code"] == "RESOURCE_EXHAUSTED" and "Free some space" in error["message"], error
            assert files_under(datasets) == before, what  # no file, no temp file
            assert api.get(f"/api/v1/datasets/{body['name']}/").status_code == 404, what  # no row
    for url, body in calls.values():
        assert api.post(url, json=body).status_code == 201


@pytest.fixture
def long_answers(teacher):
    """Rows of about 600 bytes: a 4 KiB page holds a few of them, not the whole dataset."""
    plain = teacher.answer
    teacher.answer = lambda instruction: f"Answer to: {instruction} " + "words " * 100
    yield
    teacher.answer = plain


def test_generation_onto_a_full_disk_fails_keeping_its_rows_and_resumes(api, stack, teacher, datasets, long_answers):
    with disk_full(datasets, leave_bytes=2 * 4096):  # a page for the rows, one for their metadata
        job_id = generate(api, teacher, "no-room")
        failed = wait_for(lambda: (j := job(api, job_id))["state"] == "failed" and j, what="the job to fail")
        assert "no space left" in failed["error"] and "resume the job" in failed["error"], failed
        assert 0 < failed["kept"] < len(INSTRUCTIONS)
        assert not (datasets / "no-room.jsonl").exists()  # nothing published
    resumed = api.post(f"/api/v1/generation-jobs/{job_id}/resume/", json={"token": TEACHER_TOKEN})
    assert resumed.status_code == 202, resumed.text
    done = wait_for(lambda: (j := job(api, job_id))["state"] == "succeeded" and j, what="the resumed job")
    assert_events_whole(api, f"/api/v1/generation-jobs/{job_id}/events/", done["last_seq"])
    assert_dataset_whole(api, stack, "no-room")


def test_an_adapter_export_onto_a_full_disk_fails_the_run_and_publishes_nothing(api, small_disks, datasets):
    adapters = small_disks[0] / "adapters"
    uploaded = api.post("/api/v1/datasets/", json={"name": "for-export", "rows": fixed_answer_rows(8)})
    assert uploaded.status_code == 201, uploaded.text
    before = files_under(adapters)
    with disk_full(adapters, leave_bytes=16384):
        run_id = start_run(api, "for-export", "no-room", epochs=1)
        run = run_ended(api, run_id)
        assert run["state"] == "failed" and "No space left" in run["error"], run
        assert "adapters/no-room-v1: nothing was saved" in run["error"] and "resume the run" in run["error"]
        assert run["adapter"] is None and files_under(adapters) == before  # no folder, no temp folder
    resumed = api.post(f"/api/v1/runs/{run_id}/resume/")
    assert resumed.status_code == 202, resumed.text
    done = run_ended(api, run_id, what="the resumed run to end")
    assert done["state"] == "succeeded" and done["adapter"] == "no-room-v1", done
    assert done["resumed_from_step"] == done["max_steps"]  # from the last checkpoint: nothing trained twice
    assert (adapters / "no-room-v1" / "adapter_model.safetensors").exists()
