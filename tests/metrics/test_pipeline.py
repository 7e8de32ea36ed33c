"""Metrics and logs as operators see them: the running stack, a small pipeline, every /metrics scraped.

Generate a few rows from the real vLLM, fine-tune the tiny model briefly, hot-load the adapter and
compare, all through REST; then check that each process's counters moved by what the pipeline did,
and that a REST call's X-Request-ID shows up in the services' JSON log lines.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from synthtune.client import Client
from tests.metrics.scrape import Samples, scrape
from tests.support.stack import running_stack

pytestmark = pytest.mark.slow

DATAGEN = "synthtune.datagen.v1.DatagenService"
TRAINER = "synthtune.trainer.v1.TrainerService"
PROXY = "synthtune.serving.v1.ServingProxyService"
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_models, vllm_server):
    with running_stack(tmp_path_factory.mktemp("metrics"), SYNTHTUNE_MODELS_ROOT=str(tiny_models),
                       SYNTHTUNE_VLLM_URL=vllm_server.url) as running:
        yield running


def scrape_all(stack) -> dict[str, Samples]:
    return {name: scrape(url) for name, url in stack.metrics_urls.items()}


def wait_for(what: str, probe: Callable[[], object], timeout_s: float = 120.0, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        if result := probe():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every_s)


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # a library's plain stderr line
    return lines


def test_every_endpoint_counts_a_pipeline_run_and_request_ids_reach_the_services(stack, vllm_server):
    assert set(stack.metrics_urls) == {"datagen", "trainer", "serving-proxy", "worker", "control-plane"}
    before = scrape_all(stack)
    client = Client(stack.url, token=stack.token, timeout_s=60)
    headers = {"Authorization": f"Token {stack.token}"}
    rid_generate, rid_load = f"metrics-gen-{uuid.uuid4().hex[:12]}", f"metrics-load-{uuid.uuid4().hex[:12]}"

    # Generate three rows from the real vLLM, with our own request id.
    reply = httpx.post(f"{stack.url}/api/v1/generation-jobs/", timeout=30, headers={**headers, "X-Request-ID": rid_generate},
                       json={"name": "metrics-gen", "base_url": vllm_server.base_url, "model": vllm_server.model,
                             "mode": "from_instructions", "max_tokens": 16,
                             "instructions": ["Name a fruit.", "Name a river.", "Name a city."]})
    assert reply.status_code == 202, reply.text
    assert reply.headers["X-Request-ID"] == rid_generate
    job_id = reply.json()["job_id"]
    job = wait_for("the generation", lambda: (j := client.generation_job(job_id))["state"] in TERMINAL and j)
    assert job["state"] == "succeeded", job

    # Fine-tune briefly on an uploaded dataset, then hot-load the adapter and compare once.
    rows = [{"instruction": f"Q{i}?", "output": f"A{i}."} for i in range(10)]
    client.request("POST", "/api/v1/datasets/", json={"name": "metrics-faq", "rows": rows})
    run = client.start_run(datasets=["metrics-faq"], base_model="tiny-phi3", adapter_name="metrics",
                           hyperparameters={"epochs": 1, "max_length": 128, "device": "cpu"})
    run = wait_for("the run", lambda: (r := client.run(run["run_id"]))["state"] in TERMINAL and r, timeout_s=180)
    assert run["state"] == "succeeded" and run["adapter"], run
    loaded = client.request("POST", f"/api/v1/adapters/{run['adapter']}/load/", json={"targets": []},
                            headers={"X-Request-ID": rid_load})
    assert loaded["served_name"] == run["adapter"], loaded
    compared = client.compare(adapter=run["adapter"], prompt="Q1?", sampling={"max_tokens": 8})
    assert "base" in compared and "adapter" in compared, compared

    # The worker counts a watch stream when it ends, just after the DB shows the job finished.
    def worker_saw_both_streams():
        now = scrape(stack.metrics_urls["worker"])
        ended = [now.sum("synthtune_grpc_client_handled_total", grpc_method=m, grpc_code="OK")
                 - before["worker"].sum("synthtune_grpc_client_handled_total", grpc_method=m, grpc_code="OK")
                 for m in ("WatchGeneration", "WatchRun")]
        return all(n >= 1 for n in ended)

    wait_for("the worker to count its watch streams", worker_saw_both_streams, timeout_s=30)
    after = scrape_all(stack)

    def moved(process: str, name: str, **labels: str) -> float:
        return after[process].sum(name, **labels) - before[process].sum(name, **labels)

    handled = "synthtune_grpc_server_handled_total"
    # datagen: the RPCs it served, the rows it wrote, its jobs by state.
    assert moved("datagen", handled, grpc_service=DATAGEN, grpc_method="StartGeneration", grpc_code="OK") == 1
    assert moved("datagen", handled, grpc_method="WatchGeneration", grpc_type="server_stream", grpc_code="OK") >= 1
    assert moved("datagen", "synthtune_grpc_server_handling_seconds_count", grpc_method="StartGeneration") == 1
    kept = job["kept"]
    assert kept >= 1 and moved("datagen", "synthtune_datagen_rows_total", outcome="kept") == kept
    assert moved("datagen", "synthtune_datagen_jobs", state="succeeded") == 1
    # trainer: the run, the tokens it trained, its throughput.
    assert moved("trainer", handled, grpc_service=TRAINER, grpc_method="StartRun", grpc_code="OK") == 1
    assert moved("trainer", "synthtune_trainer_tokens_total") > 0
    assert moved("trainer", "synthtune_trainer_steps_total") >= 1
    assert after["trainer"].sum("synthtune_trainer_last_run_tokens_per_second") > 0
    assert after["trainer"].sum("synthtune_trainer_tokens_per_second") == 0  # nothing trains any more
    assert moved("trainer", "synthtune_trainer_runs", state="succeeded") == 1
    # serving proxy: the load and the comparison, its calls to vLLM, what vLLM serves now.
    assert moved("serving-proxy", handled, grpc_service=PROXY, grpc_method="LoadAdapter", grpc_code="OK") == 1
    assert moved("serving-proxy", handled, grpc_method="CompareOne", grpc_code="OK") == 1
    assert moved("serving-proxy", "synthtune_vllm_requests_total", target=vllm_server.url, op="load", outcome="ok") == 1
    completions = sum(moved("serving-proxy", "synthtune_vllm_requests_total", op=op, outcome="ok")
                      for op in ("chat", "completion"))
    assert completions == 2  # base and adapter
    assert moved("serving-proxy", "synthtune_vllm_request_seconds_count", op="load") == 1
    assert after["serving-proxy"].sum("synthtune_vllm_adapters_loaded", target=vllm_server.url) >= 1
    # worker: the streams it followed.
    assert moved("worker", "synthtune_worker_follows_total", follower="generation", outcome="ended") >= 1
    assert moved("worker", "synthtune_worker_follows_total", follower="runs", outcome="ended") >= 1
    # control plane: HTTP by route and status, its gRPC calls, DB state at scrape time.
    http = "synthtune_http_requests_total"
    assert moved("control-plane", http, method="POST", route="datasets:generation-jobs", status="202") == 1
    assert moved("control-plane", http, method="POST", route="runs:runs", status="202") == 1
    assert moved("control-plane", http, method="POST", route="deployments:adapter-load", status="201") == 1
    assert moved("control-plane", http, method="POST", route="deployments:compare", status="200") == 1
    assert moved("control-plane", http, method="GET", route="runs:run-detail", status="200") >= 1
    assert moved("control-plane", "synthtune_http_request_seconds_count", method="POST", route="runs:runs") == 1
    assert moved("control-plane", "synthtune_grpc_client_handled_total", grpc_service="datagen",
                 grpc_method="StartGeneration", grpc_code="OK") == 1
    assert moved("control-plane", "synthtune_grpc_client_handled_total", grpc_service="serving_proxy",
                 grpc_method="LoadAdapter", grpc_code="OK") == 1
    assert moved("control-plane", "synthtune_control_plane_generation_jobs", state="succeeded") == 1
    assert moved("control-plane", "synthtune_control_plane_runs", state="succeeded") == 1
    assert after["control-plane"].sum("synthtune_control_plane_adapters_loaded", target=vllm_server.url) == 1

    # Logs: the REST call's X-Request-ID is on the services' JSON lines for that request.
    datagen_lines = [line for line in json_lines(stack.log_text("datagen")) if line.get("request_id") == rid_generate]
    assert {"generation queued", "dataset written"} <= {line["message"] for line in datagen_lines}, datagen_lines
    assert all(line["service"] == "datagen" and line["rpc"] for line in datagen_lines)
    proxy_lines = [line for line in json_lines(stack.log_text("serving-proxy")) if line.get("request_id") == rid_load]
    # The proxy's own line for the load, then the access line of the RPC that carried it.
    assert [line["message"] for line in proxy_lines] == ["adapter load", "rpc finished"], proxy_lines
    assert proxy_lines[-1]["rpc"].endswith("/LoadAdapter") and proxy_lines[-1]["code"] == "OK"
    assert proxy_lines[0]["rpc"] == f"/{PROXY}/LoadAdapter"


def test_metrics_endpoints_are_plain_prometheus_text_and_cheap(stack):
    for name, url in stack.metrics_urls.items():
        started = time.perf_counter()
        reply = httpx.get(url, timeout=10)
        elapsed = time.perf_counter() - started
        assert reply.status_code == 200, (name, reply.text[:200])
        assert reply.headers["content-type"].startswith("text/plain; version=0.0.4"), name
        assert elapsed < 1.0, (name, elapsed)
    # The control plane's /metrics needs no login (like /healthz): Prometheus scrapes it as is.
    assert "synthtune_http_requests_total" in httpx.get(stack.metrics_urls["control-plane"], timeout=10).text
