"""The control plane's /metrics: HTTP counts by route, DB state at scrape time, the optional
token, and gunicorn's multi-process mode (several workers, one set of numbers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from control_plane.datasets.models import GenerationJob
from control_plane.deployments.models import Deployment
from control_plane.runs.models import Run
from synthtune.readiness import free_port, wait_http_ok
from tests.control_plane.deployments.factories import DeploymentFactory
from tests.control_plane.factories import GenerationJobFactory
from tests.control_plane.runs.factories import RunFactory
from tests.metrics.scrape import parse
from tests.support.procs import REPO


def metrics(client, **headers) -> object:
    reply = client.get("/metrics", headers=headers)
    assert reply.status_code == 200, reply.content[:300]
    assert reply["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(reply.content.decode())


@pytest.mark.django_db
def test_http_requests_are_counted_by_route_name_never_by_raw_path(client):
    before = metrics(client)
    client.get("/healthz")
    client.get("/healthz")
    client.get("/api/v1/runs/")  # anonymous: 401 from DRF
    client.get("/api/v1/runs/some-run-id/")
    client.get("/no/such/page/12345")
    client.generic("BREW", "/healthz")
    after = metrics(client)

    def moved(**labels):
        return after.sum("synthtune_http_requests_total", **labels) - before.sum("synthtune_http_requests_total", **labels)

    assert moved(method="GET", route="healthz", status="200") == 2
    assert moved(method="GET", route="runs:runs", status="401") == 1
    assert moved(method="GET", route="runs:run-detail", status="401") == 1  # the id is not a label
    assert moved(method="GET", route="unmatched", status="404") == 1
    assert moved(method="other", route="healthz") == 1  # odd methods share one label value
    assert moved(method="GET", route="metrics", status="200") == 1  # the first scrape, counted after it ran
    assert after.sum("synthtune_http_request_seconds_count", method="GET", route="healthz") - before.sum(
        "synthtune_http_request_seconds_count", method="GET", route="healthz") == 2
    routes = {labels["route"] for labels in after.labels_of("synthtune_http_requests_total")}
    assert not any("some-run-id" in r or "12345" in r for r in routes), routes


@pytest.mark.django_db
def test_jobs_runs_and_loaded_adapters_are_read_from_the_db_at_scrape_time(client):
    GenerationJobFactory.create_batch(2, state=GenerationJob.State.RUNNING)
    GenerationJobFactory(state=GenerationJob.State.SUCCEEDED)
    RunFactory(state=Run.State.QUEUED)
    DeploymentFactory.create_batch(2, target="http://vllm-a:8000")
    DeploymentFactory(target="http://vllm-a:8000", state=Deployment.State.UNLOADED)
    DeploymentFactory(target="http://vllm-b:8000", state=Deployment.State.LOST)
    samples = metrics(client)
    assert samples.sum("synthtune_control_plane_generation_jobs", state="running") == 2
    assert samples.sum("synthtune_control_plane_generation_jobs", state="succeeded") == 1
    assert samples.sum("synthtune_control_plane_generation_jobs", state="cancelled") == 0  # present, at 0
    assert {"state": "cancelled"} in samples.labels_of("synthtune_control_plane_generation_jobs")
    assert samples.sum("synthtune_control_plane_runs", state="queued") == 1
    assert samples.sum("synthtune_control_plane_adapters_loaded", target="http://vllm-a:8000") == 2
    assert samples.sum("synthtune_control_plane_adapters_loaded", target="http://vllm-b:8000") == 0
    assert samples.sum("synthtune_control_plane_deployments", target="http://vllm-b:8000", state="lost") == 1
    RunFactory(state=Run.State.QUEUED)
    assert metrics(client).sum("synthtune_control_plane_runs", state="queued") == 2


@pytest.mark.django_db
def test_metrics_are_open_like_healthz_unless_a_token_is_set(client, settings):
    assert client.get("/metrics").status_code == 200  # no login: Prometheus scrapes it as is
    settings.SYNTHTUNE_METRICS_TOKEN = "scrape-token-0123456789"
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert metrics(client, Authorization="Bearer scrape-token-0123456789").sum("synthtune_http_requests_total") > 0
    assert client.post("/metrics").status_code in (403, 405)  # read-only


def test_gunicorn_workers_share_one_set_of_numbers(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR: whichever worker answers the scrape reports every worker's counts,
    and the gunicorn hooks clear what a previous server left in the folder."""
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_424242.db").write_bytes(b"left by a previous server, unreadable")
    port = free_port()
    env = {**os.environ, "SYNTHTUNE_DATA_ROOT": str(tmp_path / "data"), "PROMETHEUS_MULTIPROC_DIR": str(folder),
           "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "SYNTHTUNE_LOG_LEVEL": "ERROR"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "control_plane.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--config", "python:control_plane.gunicorn_conf"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/healthz", proc=proc, name="gunicorn", timeout_s=60)
        with httpx.Client(base_url=url, timeout=10) as http, ThreadPoolExecutor(8) as pool:
            before = _settled_healthz_count(http)
            codes = list(pool.map(lambda _: httpx.get(f"{url}/healthz", timeout=10).status_code, range(40)))
            assert codes == [200] * 40
            scrapes = [parse(http.get("/metrics").text) for _ in range(6)]
        totals = {s.sum("synthtune_http_requests_total", route="healthz") - before for s in scrapes}
        assert totals == {40}, totals  # the same total whichever worker answered
        writers = {path.name.rsplit("_", 1)[-1] for path in Path(folder).glob("counter_*.db")}
        assert len(writers) == 2, writers  # both workers counted; the stale file is gone
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def _settled_healthz_count(http: httpx.Client) -> float:
    """The healthz count once it holds still: a readiness poll that timed out while gunicorn booted
    can still be answered, and counted, after the poll that succeeded (seen once under load: 41)."""
    last = None
    for _ in range(50):
        now = parse(http.get("/metrics").text).sum("synthtune_http_requests_total", route="healthz")
        if now == last:
            return now
        last = now
        time.sleep(0.3)
    raise AssertionError("the healthz count kept moving")
