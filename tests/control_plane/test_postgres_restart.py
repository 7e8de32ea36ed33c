"""The PostgreSQL server restarted mid-job (the PostgreSQL leg only): the job goes on, the worker
and the web process reconnect by themselves, nothing is lost or stored twice.

The server is stopped as a crash would stop it (`pg_ctl -m immediate`: every connection cut,
recovery from the WAL at start) while the worker is storing a generation job's events; the
worker's write fails, is retried from the last stored seq, and the web process's kept
connections are replaced at their next request (CONN_HEALTH_CHECKS).
"""

from __future__ import annotations

import time

import httpx
import pytest
from django.db import connections

from tests.faults.helpers import (
    INSTRUCTIONS,
    assert_dataset_whole,
    assert_events_whole,
    generate,
    job,
    wait_for,
)
from tests.support.fake_openai import FakeOpenAI
from tests.support.postgres import on_postgres_leg, restart_server
from tests.support.stack import running_stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not on_postgres_leg(), reason="restarts the PostgreSQL leg's own server; the leg runs it"),
]


def test_a_postgresql_restart_mid_job_loses_nothing_and_both_processes_reconnect(tmp_path):
    with FakeOpenAI(latency_s=0.3) as teacher, running_stack(
        tmp_path / "data", SYNTHTUNE_WORKER_BACKOFF_MAX_S="1"
    ) as stack:
        api = httpx.Client(base_url=stack.url, headers={"Authorization": f"Token {stack.token}"}, timeout=30)
        job_id = generate(api, teacher, "pg-restart")
        wait_for(lambda: job(api, job_id)["kept"] >= 3, what="the worker to store some progress")
        # Every one of the web process's threads keeps its connection open (CONN_MAX_AGE).
        assert all(api.get("/api/v1/datasets/").status_code == 200 for _ in range(8))
        try:
            restart_server()
        finally:
            connections.close_all()  # this process's own connections died with the server too
        assert job(api, job_id)["state"] in ("running", "succeeded")  # the web process's first request after

        done = wait_for(lambda: (j := job(api, job_id))["state"] == "succeeded" and j, what="the job to succeed")
        assert done["kept"] == len(INSTRUCTIONS)
        assert_events_whole(api, f"/api/v1/generation-jobs/{job_id}/events/", done["last_seq"])
        assert_dataset_whole(api, stack, "pg-restart")
        statuses = [api.get("/api/v1/datasets/").status_code for _ in range(20)]
        assert statuses == [200] * 20  # no thread left with a dead connection
        time.sleep(0.5)
        assert stack.stack.proc("worker").poll() is None and "following a job failed" in stack.log_text("worker")
        api.close()
