"""The service as a process: crash and restart, graceful stop, bad settings, secrets, queueing, watches."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import grpc
import pytest

from datagen_svc.config import load_settings
from datagen_svc.jobs import JobState, JobStore
from datagen_svc.manager import JobManager
from synthtune.datagen.v1 import datagen_pb2 as pb
from tests.datagen_svc.conftest import (
    Datagen,
    InProcessDatagen,
    assert_published,
    request,
    rows_of,
    start_datagen,
)
from tests.support.fake_openai import Reply, Status
from tests.support.procs import REPO, TEST_GRPC_TOKEN


def test_a_crash_mid_job_reports_interrupted_and_resume_completes(data_root, tmp_path, fake):
    fake.latency_s = 0.05
    service = start_datagen(data_root, tmp_path / "first.log")
    client = Datagen(service.address, data_root)
    try:
        job = client.start(request(fake.base_url, "crashy", num_rows=40, concurrency=2))
        client.wait_for(job.job_id, lambda j: j.counts.kept >= 5)
    finally:
        service.proc.kill()  # SIGKILL: no chance to tidy up
        service.proc.wait()
        client.close()
    assert not client.dataset(job).exists()

    service = start_datagen(data_root, tmp_path / "second.log")
    client = Datagen(service.address, data_root)
    try:
        job = client.get(job.job_id)
        assert job.state == pb.JOB_STATE_FAILED and job.error == "interrupted"
        kept = rows_of(client.partial(job))
        assert job.counts.kept == len(kept) >= 5  # counted from the file, not from stale job.json
        events = client.events(job.job_id)
        assert events[-1].state_changed.error == "interrupted"

        fake.latency_s = 0.0
        fake.wait_quiet()  # the killed service's last requests may still be on their way in
        calls_before = len(fake.chat_requests())
        job = client.wait(client.resume(job.job_id).job_id)
        rows = assert_published(client, job, 40)
        assert rows[: len(kept)] == kept
        assert len(fake.chat_requests()) - calls_before == 40 - len(kept)
        seqs = [e.seq for e in client.events(job.job_id)]
        assert seqs == list(range(1, len(seqs) + 1))  # numbering survived the crash
    finally:
        client.close()
        service.stop()


def test_sigterm_stops_jobs_cleanly_as_interrupted(data_root, tmp_path, fake):
    fake.latency_s = 0.05
    service = start_datagen(data_root, tmp_path / "svc.log")
    client = Datagen(service.address, data_root)
    job = client.start(request(fake.base_url, "graceful", num_rows=200, concurrency=2))
    client.wait_for(job.job_id, lambda j: j.counts.kept >= 3)
    client.close()
    started = time.monotonic()
    assert service.stop() == 0
    assert time.monotonic() - started < 5

    saved = json.loads((data_root / "jobs" / "datagen" / job.job_id / "job.json").read_text())
    assert saved["state"] == "failed" and saved["error"] == "interrupted"
    assert saved["counts"]["kept"] == len(rows_of(client.partial(job)))
    assert '"message": "jobs stopped for shutdown"' in service.log_text()


def test_bad_settings_stop_the_service_at_start_without_echoing_values(data_root):
    env = {
        **os.environ,
        "SYNTHTUNE_GRPC_TOKEN": "short-canary",
        "SYNTHTUNE_DATA_ROOT": str(data_root),
        "SYNTHTUNE_DATAGEN_MAX_ROWS": "-3",
        "SYNTHTUNE_DATAGEN_LISTEN": "nowhere",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "datagen_svc"],
        cwd=REPO,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    for variable in ("SYNTHTUNE_GRPC_TOKEN", "SYNTHTUNE_DATAGEN_MAX_ROWS", "SYNTHTUNE_DATAGEN_LISTEN"):
        assert variable in proc.stdout
    assert "short-canary" not in proc.stdout + proc.stderr
    message = json.loads(proc.stdout.splitlines()[-1])["message"]  # still a JSON log line
    # Readable: the redaction that hides tokens must not eat the reason (no "TOKEN: <word>").
    assert "SYNTHTUNE_GRPC_TOKEN must be at least 16 characters" in message and "[REDACTED]" not in message


def test_the_endpoint_token_is_stored_and_logged_nowhere(data_root, tmp_path, fake):
    canary = f"sk-canary-{uuid.uuid4().hex}"
    log = tmp_path / "svc.log"
    service = start_datagen(data_root, log, SYNTHTUNE_LOG_LEVEL="DEBUG")
    client = Datagen(service.address, data_root)
    try:
        done = client.wait(client.start(request(fake.base_url, "canary-ok", num_rows=3, token=canary)).job_id)
        assert done.state == pb.JOB_STATE_SUCCEEDED
        # An endpoint that echoes the key in its errors, then retries, then a fatal rejection.
        fake.script(Status(500, message=f"bad key {canary}"), Status(401, message=f"unknown key {canary}"))
        failed = client.wait(
            client.start(
                request(
                    fake.base_url,
                    "canary-bad",
                    mode=pb.GENERATION_MODE_SELF_INSTRUCT,
                    num_rows=3,
                    token=canary,
                )
            ).job_id
        )
        assert failed.state == pb.JOB_STATE_FAILED and "[REDACTED]" in failed.error
        resumed = client.wait(client.resume(failed.job_id, token=canary).job_id)
        assert resumed.state == pb.JOB_STATE_SUCCEEDED
        listed = client.stub.ListGenerations(pb.ListGenerationsRequest(), timeout=10)
        assert canary not in str(listed)
    finally:
        client.close()
        service.stop()

    assert all(r.headers["Authorization"] == f"Bearer {canary}" for r in fake.chat_requests())  # it was used
    needle = canary.encode()
    files = [p for p in data_root.rglob("*") if p.is_file()]
    assert len(files) >= 6 and not [p for p in files if needle in p.read_bytes()]
    text = log.read_text()
    assert '"message": "retrying endpoint request"' in text  # the echoed error was logged, masked
    assert canary not in text


def test_jobs_beyond_the_running_limit_wait_queued(data_root, fake):
    fake.latency_s = 0.05
    with InProcessDatagen(data_root, max_running_jobs=1) as server:
        client = Datagen(server.address, data_root)
        first = client.start(request(fake.base_url, "first-in-line", num_rows=10, concurrency=1))
        second = client.start(request(fake.base_url, "second-in-line", num_rows=2))
        assert client.get(second.job_id).state == pb.JOB_STATE_QUEUED
        client.wait_for(first.job_id, lambda j: j.counts.kept >= 1)
        assert client.get(second.job_id).state == pb.JOB_STATE_QUEUED

        cancelled = client.cancel(second.job_id)  # a queued job cancels at once, without rows
        assert cancelled.state == pb.JOB_STATE_CANCELLED and cancelled.counts.kept == 0
        assert client.wait(first.job_id).state == pb.JOB_STATE_SUCCEEDED
        client.close()


def test_a_dropped_watch_stream_is_noticed(data_root, fake):
    fake.latency_s = 0.05
    with InProcessDatagen(data_root) as server:
        client = Datagen(server.address, data_root)
        job = client.start(request(fake.base_url, "watched", num_rows=100, concurrency=1))
        stream = client.stub.WatchGeneration(pb.WatchGenerationRequest(job_id=job.job_id), timeout=30)
        next(stream)
        assert server.manager.active_watches == 1
        stream.cancel()
        deadline = time.monotonic() + 5
        while server.manager.active_watches and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.manager.active_watches == 0
        assert client.get(job.job_id).state == pb.JOB_STATE_RUNNING  # the job itself goes on
        client.cancel(job.job_id)
        client.close()


def test_service_shutdown_refuses_new_jobs(data_root, fake):
    with InProcessDatagen(data_root) as server:
        client = Datagen(server.address, data_root)
        server.call(server.manager.shutdown())
        with pytest.raises(grpc.RpcError) as info:
            client.start(request(fake.base_url, "too-late"))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        client.close()


def test_health_says_serving_and_sigterm_exits_cleanly(data_root, tmp_path):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    service = start_datagen(data_root, tmp_path / "svc.log")
    with grpc.insecure_channel(service.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request_ = health_pb2.HealthCheckRequest(service="synthtune.datagen.v1.DatagenService")
        assert stub.Check(request_, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(10) == 0
    assert '"message": "shutting down"' in service.log_text()


def test_resume_needs_a_resumable_job_and_a_free_name(data_root, fake):
    fake.default = Status(401)
    with InProcessDatagen(data_root) as server:
        client = Datagen(server.address, data_root)
        job = client.wait(client.start(request(fake.base_url, "contested")).job_id)
        assert job.state == pb.JOB_STATE_FAILED  # failed before any row: the name is free again
        fake.default = Reply()
        other = client.wait(client.start(request(fake.base_url, "contested", num_rows=1)).job_id)
        assert other.state == pb.JOB_STATE_SUCCEEDED
        with pytest.raises(grpc.RpcError) as info:
            client.resume(job.job_id)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "contested" in info.value.details()
        client.close()


def test_a_crash_between_publish_and_save_is_recovered_as_succeeded(data_root):
    store = JobStore(data_root)
    store.load()
    job = store.create(dataset_name="late", dataset_path="datasets/late.jsonl", target_rows=2, params={})
    store.set_state(job, JobState.RUNNING)
    final = data_root / "datasets" / "late.jsonl"
    partial = final.with_name("late.jsonl.partial")
    final.parent.mkdir()
    partial.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n')
    os.link(partial, final)  # the publish's link happened; its unlink and the save did not

    manager = JobManager(settings=load_settings(data_root=data_root, grpc_token=TEST_GRPC_TOKEN))
    manager.recover()
    recovered = manager.get(job.job_id)
    assert recovered.state is JobState.SUCCEEDED and recovered.counts.kept == 2
    assert recovered.sha256 == hashlib.sha256(final.read_bytes()).hexdigest() and not partial.exists()
