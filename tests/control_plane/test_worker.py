"""The worker: resuming streams after the last stored seq, and riding out a service that is down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from control_plane.core.worker import backoff_s
from control_plane.datasets import services
from control_plane.datasets.datagen import datagen_client, event_record
from control_plane.datasets.models import GenerationJob, JobEvent
from control_plane.datasets.worker import GenerationFollower
from synthtune.datagen.v1 import datagen_pb2 as pb
from tests.control_plane.factories import GenerationJobFactory
from tests.control_plane.helpers import generate_body, wait_for
from tests.support import procs
from tests.support.postgres import database_url

JOBS = "/api/v1/generation-jobs/"


def finished_on_service(job_id: str) -> bool:
    reply = datagen_client().call("GetGeneration", pb.GetGenerationRequest(job_id=job_id))
    return reply.job.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED)


@pytest.mark.django_db
def test_follow_resumes_after_the_last_stored_seq(api, datagen, teacher):
    job_id = api.post(JOBS, generate_body(teacher), format="json").json()["job_id"]
    wait_for(lambda: finished_on_service(job_id), what="the job to finish on the service")

    # A previous worker stored the first two events, then the control plane went down.
    request = pb.WatchGenerationRequest(job_id=job_id, after_seq=0)
    stream = datagen_client().stream("WatchGeneration", request, timeout_s=10)
    for _, message in zip(range(2), stream):
        services.generation_event_record(job_id=job_id, event=event_record(message))
    stream.close()
    assert GenerationJob.objects.get(job_id=job_id).last_seq == 2

    GenerationFollower().follow(job_id)  # the restarted worker catches up

    job = GenerationJob.objects.get(job_id=job_id)
    seqs = list(JobEvent.objects.filter(job=job).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 4  # none lost, none twice
    assert job.state == "succeeded" and job.dataset.status == "ready" and job.dataset.rows == 4


@pytest.mark.django_db
def test_a_job_the_service_forgot_is_marked_failed(datagen):
    job = GenerationJobFactory(job_id="0" * 32)
    GenerationFollower().follow(job.job_id)
    job.refresh_from_db()
    assert job.state == "failed" and "no longer knows" in job.error
    assert GenerationFollower().pending() == []


def test_backoff_grows_and_is_capped():
    assert backoff_s(1, cap_s=30) <= 0.5
    assert 8 <= backoff_s(6, cap_s=30) <= 16
    assert backoff_s(50, cap_s=3) <= 3


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "control_plane", "worker"],
            cwd=procs.REPO,
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.django_db(transaction=True)
def test_worker_process_survives_the_service_being_down_and_catches_up(
    api, datagen, teacher, data_root, tmp_path, monkeypatch
):
    """A real `python -m control_plane worker` against the test database."""
    address = datagen.address
    job_id = api.post(JOBS, generate_body(teacher), format="json").json()["job_id"]
    wait_for(lambda: finished_on_service(job_id), what="the job to finish on the service")
    datagen.stop()  # the service goes down before the worker ever saw the job's events

    log = tmp_path / "worker.log"
    env = {
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "SYNTHTUNE_DATA_ROOT": str(data_root),
        "SYNTHTUNE_DATAGEN_ADDR": address,
        "SYNTHTUNE_GRPC_TOKEN": procs.TEST_GRPC_TOKEN,
        "SYNTHTUNE_WORKER_POLL_S": "0.2",
        "SYNTHTUNE_WORKER_BACKOFF_MAX_S": "1",
    }
    worker = _start_worker(env, log)
    try:
        wait_for(
            lambda: log.read_text().count("service unavailable") >= 2, what="retries logged", timeout_s=20
        )
        assert worker.poll() is None, log.read_text()
        assert address in log.read_text()
        assert GenerationJob.objects.get(job_id=job_id).last_seq == 0  # nothing consumed yet
    except AssertionError:
        worker.kill()
        raise

    monkeypatch.setattr(procs, "free_port", lambda: int(address.rsplit(":", 1)[1]))
    restarted = procs.start_service(
        "datagen_svc",
        listen_var="SYNTHTUNE_DATAGEN_LISTEN",
        env={"SYNTHTUNE_DATA_ROOT": str(data_root)},
        log_path=tmp_path / "datagen-2.log",
    )
    try:
        job = wait_for(
            lambda: (j := GenerationJob.objects.get(job_id=job_id)).is_finished and j,
            what="the worker to catch up",
        )
        assert job.state == "succeeded" and job.dataset.status == "ready" and job.dataset.rows == 4
        seqs = list(JobEvent.objects.filter(job=job).values_list("seq", flat=True))
        assert seqs == list(range(1, job.last_seq + 1))
    finally:
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        worker.wait(timeout=15)
        restarted.stop()
    assert worker.returncode == 0 and time.monotonic() - started < 10
    assert "worker stopped" in log.read_text()
