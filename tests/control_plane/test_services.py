"""Services: recording stream events, uploads, and the token never landing anywhere."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime

import pytest
from django.db import connection

from control_plane.core.errors import AlreadyExists, PayloadTooLarge, Unavailable
from control_plane.core.events import EventRecord
from control_plane.datasets import services, storage
from control_plane.datasets.generation import GenerationParams
from control_plane.datasets.models import Dataset, GenerationJob, JobEvent
from tests.control_plane.factories import GenerationJobFactory
from tests.control_plane.helpers import CHAT_ROWS, INSTRUCTION_ROWS, follow_to_end, generate_body, jsonl

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def event(seq: int, type: str, **payload) -> EventRecord:
    return EventRecord(seq=seq, type=type, payload=payload, time=NOW)


def database_dump() -> str:
    """Every row of every table as text, on SQLite and PostgreSQL alike."""
    lines = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            lines += (repr([bytes(v) if isinstance(v, memoryview) else v for v in row]) for row in cursor.fetchall())
    return "\n".join(lines)


def test_events_update_job_and_dataset_and_replays_are_ignored(data_root):
    job = GenerationJobFactory(state="queued", target_rows=2)
    record = lambda e: services.generation_event_record(job_id=job.job_id, event=e)

    assert record(event(1, "state_changed", state="running", error=""))
    assert record(
        event(2, "progress", kept=1, dropped=1, failed=0, target_rows=2, prompt_tokens=9, completion_tokens=4)
    )
    job.refresh_from_db()
    assert (job.state, job.kept, job.dropped, job.prompt_tokens, job.last_seq) == ("running", 1, 1, 9, 2)
    assert job.dataset.rows == 1 and job.dataset.status == "generating"

    assert not record(
        event(
            2, "progress", kept=99, dropped=0, failed=0, target_rows=2, prompt_tokens=0, completion_tokens=0
        )
    )
    assert JobEvent.objects.filter(job=job).count() == 2
    job.refresh_from_db()
    assert job.kept == 1

    path = data_root / "datasets" / f"{job.dataset.name}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(jsonl(CHAT_ROWS))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    record(
        event(
            3,
            "dataset_written",
            dataset_path=f"datasets/{path.name}",
            sha256=sha,
            size_bytes=path.stat().st_size,
            kept=2,
            dropped=1,
            failed=0,
        )
    )
    record(event(4, "state_changed", state="succeeded", error=""))
    job.refresh_from_db()
    dataset = job.dataset
    assert (job.state, job.finished_at, job.last_seq) == ("succeeded", NOW, 4)
    assert (dataset.status, dataset.rows, dataset.sha256, dataset.format) == ("ready", 2, sha, "chat")


def test_a_written_dataset_missing_from_our_data_root_is_marked_failed_with_a_hint():
    job = GenerationJobFactory()
    services.generation_event_record(
        job_id=job.job_id,
        event=event(
            1,
            "dataset_written",
            dataset_path="datasets/elsewhere.jsonl",
            sha256="0" * 64,
            size_bytes=10,
            kept=1,
            dropped=0,
            failed=0,
        ),
    )
    job.dataset.refresh_from_db()
    assert job.dataset.status == "failed"
    assert "SYNTHTUNE_DATA_ROOT" in job.dataset.error


def test_failed_and_cancelled_jobs_carry_their_reason_to_the_dataset():
    job = GenerationJobFactory()
    services.generation_event_record(
        job_id=job.job_id, event=event(1, "state_changed", state="failed", error="interrupted")
    )
    job.refresh_from_db()
    assert (job.state, job.error, job.dataset.status, job.dataset.error) == (
        "failed",
        "interrupted",
        "failed",
        "interrupted",
    )


def test_upload_records_format_rows_and_checksum(data_root, user):
    mixed = jsonl(INSTRUCTION_ROWS[:1] + CHAT_ROWS[:1])
    dataset = services.dataset_upload(owner=user, name="mixed", data=b"\xef\xbb\xbf" + mixed)  # with a BOM
    stored = (data_root / "datasets" / "mixed.jsonl").read_bytes()
    assert stored == mixed  # the BOM is dropped, the rest kept byte for byte
    assert (dataset.format, dataset.rows, dataset.sha256) == ("mixed", 2, hashlib.sha256(mixed).hexdigest())
    with pytest.raises(AlreadyExists):
        services.dataset_upload(owner=user, name="mixed", data=mixed)


def test_rows_with_unicode_line_separators_stay_one_row_each(data_root, user):
    # Found by the contract test: raw U+2028 in a row's string made str.splitlines() cut the line.
    rows = [{"instruction": "a\u2028b", "output": "c\x85d\u2029"}, {"instruction": "é?", "output": "ü."}]
    data = services.jsonl_from_rows(rows)
    assert len(data.decode().splitlines()) == 2
    dataset = services.dataset_upload(owner=user, name="separators", data=data)
    assert dataset.rows == 2
    stored = storage.absolute(dataset.path).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in stored] == rows


def test_upload_refuses_a_name_whose_file_exists_unrecorded(data_root, user):
    (data_root / "datasets").mkdir()
    (data_root / "datasets" / "orphan.jsonl.partial").write_text("")
    with pytest.raises(AlreadyExists, match="orphan.jsonl.partial"):
        services.dataset_upload(owner=user, name="orphan", data=jsonl(INSTRUCTION_ROWS))


def test_upload_size_limit(cp_settings, user):
    cp_settings.SYNTHTUNE_UPLOAD_MAX_BYTES = 10
    with pytest.raises(PayloadTooLarge, match="SYNTHTUNE_UPLOAD_MAX_BYTES") as raised:
        services.dataset_upload(owner=user, name="big", data=jsonl(INSTRUCTION_ROWS))
    assert raised.value.http_status == 413 and raised.value.extra["limit_bytes"] == 10
    assert not Dataset.objects.exists()


def test_generate_with_the_service_down_raises_unavailable_and_writes_nothing(user, cp_settings):
    params = GenerationParams(
        name="x", base_url="http://127.0.0.1:9/v1", model="m", mode="fixed", prompt_template="Hi", num_rows=3
    )
    with pytest.raises(Unavailable, match=cp_settings.SYNTHTUNE_DATAGEN_ADDR):
        services.dataset_generate(owner=user, params=params, token="")
    assert not Dataset.objects.exists() and not GenerationJob.objects.exists()


def test_a_canary_token_is_used_but_stored_nowhere(api, datagen, recording_teacher, data_root, caplog):
    teacher = recording_teacher
    canary = "canary-token-9f8e7d6c5b4a"
    caplog.set_level(logging.DEBUG)
    response = api.post(
        "/api/v1/generation-jobs/", generate_body(teacher, token=canary), format="json"
    )
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    follow_to_end(job_id)
    resume = api.post(f"/api/v1/generation-jobs/{job_id}/resume/", {"token": canary}, format="json")
    assert resume.status_code == 400  # succeeded jobs can't resume; the token must not leak here either

    # It was really used: the endpoint got it as the bearer token.
    assert {r.headers.get("Authorization") for r in teacher.chat_requests()} == {f"Bearer {canary}"}
    # ...and it is nowhere: not in the database, the data root, our logs or the service's log.
    dump = database_dump()
    assert "Explain DNS." in dump and canary not in dump
    for path in data_root.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path
    assert canary not in caplog.text
    assert canary not in datagen.log_text()
    assert canary not in resume.content.decode() and canary not in response.content.decode()
