"""The services' metrics without the stack: the gRPC interceptor, scrape-time gauges, the
/metrics server, the trainer's token accounting and the proxy's vLLM calls."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from serving_proxy_svc.vllm_client import VllmClient
from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.datagen.v1 import datagen_pb2_grpc as pb_grpc
from synthtune.errors import NotFound, SynthtuneError
from synthtune.grpc_server import Registration, create_server, start
from synthtune.metrics import StateCollector, start_metrics_server
from synthtune.readiness import free_port
from tests.metrics.scrape import parse, scrape
from trainer_svc.metrics import Throughput

TOKEN = "metrics-test-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
SERVICE = "synthtune.datagen.v1.DatagenService"


class _Probe(pb_grpc.DatagenServiceServicer):
    async def GetGeneration(self, request, context):
        if request.job_id == "missing":
            raise NotFound("no job 'missing'")
        if request.job_id == "slow":
            await asyncio.sleep(5)
        return pb.GetGenerationResponse()

    async def WatchGeneration(self, request, context):
        for seq in range(1, 1000 if request.job_id == "endless" else 4):
            yield pb.GenerationEvent(seq=seq)
            if request.job_id == "endless":
                await asyncio.sleep(0.01)


def handled(method: str, code: str, kind: str = "unary") -> float:
    return REGISTRY.get_sample_value("synthtune_grpc_server_handled_total", {
        "grpc_service": SERVICE, "grpc_method": method, "grpc_type": kind, "grpc_code": code}) or 0.0


def timed(method: str, kind: str = "unary") -> float:
    return REGISTRY.get_sample_value("synthtune_grpc_server_handling_seconds_count", {
        "grpc_service": SERVICE, "grpc_method": method, "grpc_type": kind}) or 0.0


def test_the_interceptor_counts_each_call_once_by_its_final_code():
    keys = [("GetGeneration", c, "unary") for c in ("OK", "NOT_FOUND", "UNAUTHENTICATED", "DEADLINE_EXCEEDED")]
    keys += [("WatchGeneration", c, "server_stream") for c in ("OK", "CANCELLED")]
    before = {key: handled(*key) for key in keys}
    timed_before = timed("GetGeneration"), timed("WatchGeneration", "server_stream")

    async def main():
        handle = create_server("127.0.0.1:0", [Registration(pb_grpc.add_DatagenServiceServicer_to_server, _Probe(),
                                                            SERVICE)], token=TOKEN)
        await start(handle)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                stub = pb_grpc.DatagenServiceStub(channel)
                await stub.GetGeneration(pb.GetGenerationRequest(job_id="x"), metadata=AUTH, timeout=5)
                await stub.GetGeneration(pb.GetGenerationRequest(job_id="x"), metadata=AUTH, timeout=5)
                for metadata, job_id, timeout in ((AUTH, "missing", 5), ((), "x", 5), (AUTH, "slow", 0.2)):
                    with pytest.raises(grpc.aio.AioRpcError):
                        await stub.GetGeneration(pb.GetGenerationRequest(job_id=job_id), metadata=metadata,
                                                 timeout=timeout)
                events = [e async for e in stub.WatchGeneration(pb.WatchGenerationRequest(), metadata=AUTH, timeout=5)]
                assert len(events) == 3
                endless = stub.WatchGeneration(pb.WatchGenerationRequest(job_id="endless"), metadata=AUTH, timeout=5)
                await endless.read()
                endless.cancel()
                # Probes are not RPCs of ours: they must not swamp the counts.
                for _ in range(3):
                    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                await asyncio.sleep(0.3)  # the server sees the cancel and the deadline
        finally:
            await handle.server.stop(0)

    asyncio.run(main())
    moved = {key: handled(*key) - before[key] for key in keys}
    assert moved == {
        ("GetGeneration", "OK", "unary"): 2, ("GetGeneration", "NOT_FOUND", "unary"): 1,
        ("GetGeneration", "UNAUTHENTICATED", "unary"): 1, ("GetGeneration", "DEADLINE_EXCEEDED", "unary"): 1,
        ("WatchGeneration", "OK", "server_stream"): 1, ("WatchGeneration", "CANCELLED", "server_stream"): 1,
    }
    assert timed("GetGeneration") - timed_before[0] == 5
    assert timed("WatchGeneration", "server_stream") - timed_before[1] == 2
    assert not any("grpc.health" in (s.labels.get("grpc_service") or "")
                   for family in REGISTRY.collect() for s in family.samples)


def test_state_collector_reports_every_state_and_survives_a_failing_source():
    states = ["queued", "running", "succeeded"]
    text = parse_one(StateCollector("synthtune_test_jobs", "Jobs.", states,
                                    lambda: ["running", "running", "succeeded", "odd"]))
    assert {tuple(labels.items()): value for labels, value in text} == {
        (("state", "queued"),): 0, (("state", "running"),): 2, (("state", "succeeded"),): 1, (("state", "odd"),): 1}

    def broken():
        raise RuntimeError("store unreadable")

    assert list(StateCollector("synthtune_test_broken", "Broken.", states, broken).collect()) == []


def parse_one(collector) -> list[tuple[dict, float]]:
    (family,) = list(collector.collect())
    return [(sample.labels, sample.value) for sample in family.samples]


def test_metrics_server_serves_scrape_time_collectors_and_stops():
    assert start_metrics_server("127.0.0.1", 0) is None  # port 0: metrics off
    port = free_port()
    jobs = ["running"]
    server = start_metrics_server("127.0.0.1", port, collectors=[
        StateCollector("synthtune_test_server_jobs", "Jobs.", ["running", "failed"], lambda: list(jobs))])
    try:
        assert server.url == f"http://127.0.0.1:{port}/metrics"
        first = scrape(server.url)
        assert first.sum("synthtune_test_server_jobs", state="running") == 1
        assert "process_cpu_seconds_total" in first.names()  # the process's own, single-process mode
        jobs.append("failed")
        assert scrape(server.url).sum("synthtune_test_server_jobs", state="failed") == 1  # read at each scrape
        with pytest.raises(OSError):
            start_metrics_server("127.0.0.1", port)  # taken: refuse, don't run without metrics
    finally:
        server.close()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # closed


def test_trainer_counts_token_increments_from_cumulative_step_events():
    def value(name):
        return REGISTRY.get_sample_value(name) or 0.0

    tokens, steps = value("synthtune_trainer_tokens_total"), value("synthtune_trainer_steps_total")
    throughput = Throughput()
    throughput.step({"num_tokens": 100, "tokens_per_s": 50.0})
    throughput.step({"num_tokens": 250, "tokens_per_s": 75.0})
    throughput.step({"num_tokens": 250, "tokens_per_s": None})  # a step that reported nothing new
    assert value("synthtune_trainer_tokens_total") - tokens == 250
    assert value("synthtune_trainer_steps_total") - steps == 3
    assert value("synthtune_trainer_tokens_per_second") == 75.0
    throughput.finished({"tokens_per_s": 60.0})
    assert value("synthtune_trainer_last_run_tokens_per_second") == 60.0
    assert value("synthtune_trainer_tokens_per_second") == 0
    Throughput().step({"num_tokens": 10})  # the next run starts counting from its own zero
    assert value("synthtune_trainer_tokens_total") - tokens == 260


class _Vllm(BaseHTTPRequestHandler):
    """A stand-in vLLM: /v1/models lists a base and two adapters; anything else fails with a 500."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._send(200 if self.path == "/v1/models" else 500, {"data": [
            {"id": "base", "root": "/m", "parent": None},
            {"id": "a-v1", "root": "/adapters/a-v1", "parent": "base"},
            {"id": "b-v1", "root": "/adapters/b-v1", "parent": "base"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(500, {"error": {"message": "boom"}})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass


def test_proxy_counts_vllm_calls_by_outcome_and_adapters_per_target():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Vllm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{server.server_address[1]}"

    def count(op, outcome, where=target):
        return REGISTRY.get_sample_value(
            "synthtune_vllm_requests_total", {"target": where, "op": op, "outcome": outcome}) or 0.0

    before = count("models", "ok"), count("unload", "http_5xx"), count("models", "unreachable", "http://127.0.0.1:9")

    async def main():
        client = VllmClient(timeout_s=2, generation_timeout_s=2)
        cards = await client.models(target, token="")
        assert len(cards) == 3
        with pytest.raises(SynthtuneError):
            await client.unload_adapter(target, name="a-v1", token="")
        await client.aclose()
        unreachable = VllmClient(timeout_s=2, generation_timeout_s=2)
        with pytest.raises(SynthtuneError):
            await unreachable.models("http://127.0.0.1:9", token="")  # nothing listens on port 9
        await unreachable.aclose()

    try:
        asyncio.run(main())
    finally:
        server.shutdown()
        server.server_close()
    after = count("models", "ok"), count("unload", "http_5xx"), count("models", "unreachable", "http://127.0.0.1:9")
    assert [b - a for a, b in zip(before, after)] == [1, 1, 1]
    assert REGISTRY.get_sample_value("synthtune_vllm_adapters_loaded", {"target": target}) == 2
    assert (REGISTRY.get_sample_value("synthtune_vllm_request_seconds_count", {"target": target, "op": "models"})
            or 0) >= 1


def test_scrape_parser_reads_what_the_exposition_writes():
    samples = parse("# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"2\"} 3.0\n")
    assert samples.sum("x_total", a="1") == 3.0 and samples.sum("x_total", a="2") == 0.0
