"""The shared bootstrap: auth, request ids, error mapping, health, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.datagen.v1 import datagen_pb2_grpc as pb_grpc
from synthtune.errors import InvalidArgument, NotFound
from synthtune.grpc_server import Registration, create_server, serve_until_signal, start
from synthtune.logs import request_id_var
from tests.support.procs import REPO

TOKEN = "unit-test-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


class _Probe(pb_grpc.DatagenServiceServicer):
    """Exercises the bootstrap through real RPCs; not a datagen implementation."""

    async def GetGeneration(self, request, context):
        if request.job_id == "missing":
            raise NotFound("no job 'missing'")
        if request.job_id == "bad":
            raise InvalidArgument("num_rows must be between 1 and 100000", field="num_rows")
        if request.job_id == "boom":
            raise RuntimeError("bug")
        if len(request.job_id) > 1000:  # an error that quotes a huge input, as "no job '<id>'" does
            raise InvalidArgument(f"job_id {request.job_id!r} is not an id", field="job_id")
        return pb.GetGenerationResponse(job=pb.GenerationJob(job_id=request_id_var.get()))

    async def WatchGeneration(self, request, context):
        for seq in range(1, 4):
            yield pb.GenerationEvent(seq=seq, job_id=request_id_var.get())


def _server():
    registration = Registration(pb_grpc.add_DatagenServiceServicer_to_server, _Probe(), "synthtune.datagen.v1.DatagenService")
    return create_server("127.0.0.1:0", [registration], token=TOKEN)


async def _with_server(body):
    handle = _server()
    await start(handle)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            return await body(pb_grpc.DatagenServiceStub(channel), channel)
    finally:
        await handle.server.stop(0)


def test_calls_without_the_token_are_unauthenticated_but_health_is_open():
    async def body(stub, channel):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetGeneration(pb.GetGenerationRequest(job_id="x"), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await stub.GetGeneration(pb.GetGenerationRequest(job_id="x"), metadata=(("authorization", "Bearer nope"),), timeout=5)
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for _ in stub.WatchGeneration(pb.WatchGenerationRequest(job_id="x"), timeout=5):
                pass
        assert streamed.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    asyncio.run(_with_server(body))


def test_request_id_is_propagated_or_created():
    async def body(stub, channel):
        given = await stub.GetGeneration(pb.GetGenerationRequest(job_id="x"), metadata=AUTH + (("x-request-id", "rid-42"),), timeout=5)
        assert given.job.job_id == "rid-42"
        made = await stub.GetGeneration(pb.GetGenerationRequest(job_id="x"), metadata=AUTH, timeout=5)
        assert len(made.job.job_id) == 32
        events = [e async for e in stub.WatchGeneration(pb.WatchGenerationRequest(), metadata=AUTH + (("x-request-id", "rid-s"),), timeout=5)]
        assert [(e.seq, e.job_id) for e in events] == [(1, "rid-s"), (2, "rid-s"), (3, "rid-s")]

    asyncio.run(_with_server(body))


def test_every_rpc_writes_one_access_line_with_its_request_id_code_and_duration():
    """The request id's trip is observable on purpose: one JSON line per finished call."""
    import io
    import json
    import logging

    from synthtune.logs import configure_logging

    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("probe", stream=stream)
    try:
        async def body(stub, channel):
            await stub.GetGeneration(pb.GetGenerationRequest(job_id="x"), metadata=AUTH + (("x-request-id", "rid-ok"),), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetGeneration(pb.GetGenerationRequest(job_id="missing"), metadata=AUTH + (("x-request-id", "rid-404"),), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetGeneration(pb.GetGenerationRequest(job_id="x"), metadata=(("x-request-id", "rid-anon"),), timeout=5)
            [_ async for _ in stub.WatchGeneration(pb.WatchGenerationRequest(), metadata=AUTH + (("x-request-id", "rid-s"),), timeout=5)]
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)

        asyncio.run(_with_server(body))
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["name"] == "synthtune.access"]
    get = "/synthtune.datagen.v1.DatagenService/GetGeneration"
    watch = "/synthtune.datagen.v1.DatagenService/WatchGeneration"
    assert [(a["request_id"], a["rpc"], a["code"], a["grpc_type"]) for a in access] == [
        ("rid-ok", get, "OK", "unary"),
        ("rid-404", get, "NOT_FOUND", "unary"),
        ("rid-anon", get, "UNAUTHENTICATED", "unary"),
        ("rid-s", watch, "OK", "server_stream"),
    ]  # and none for the health check
    assert all(a["service"] == "probe" and a["duration_ms"] >= 0 and a["message"] == "rpc finished" for a in access)


def test_domain_errors_become_precise_statuses_with_field_details():
    async def body(stub, channel):
        async def code_of(job_id):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetGeneration(pb.GetGenerationRequest(job_id=job_id), metadata=AUTH + (("x-request-id", "rid-e"),), timeout=5)
            return info.value

        missing = await code_of("missing")
        assert (missing.code(), missing.details()) == (grpc.StatusCode.NOT_FOUND, "no job 'missing'")
        bad = await code_of("bad")
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(bad)
        violation = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(violation)
        assert violation.field_violations[0].field == "num_rows"
        boom = await code_of("boom")
        assert boom.code() == grpc.StatusCode.INTERNAL and "rid-e" in boom.details()

    asyncio.run(_with_server(body))


def test_an_error_quoting_a_huge_input_still_arrives_with_its_code():
    # The gRPC fuzz found it: "no generation job '<5000 chars>'" passed the client's 8 KiB metadata
    # limit, so the caller got RESOURCE_EXHAUSTED "Stream removed" instead of the status.
    async def body(stub, channel):
        for job_id in ("x" * 5000, "é" * 70_000, "🙂" * 30_000):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetGeneration(pb.GetGenerationRequest(job_id=job_id), metadata=AUTH, timeout=5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()[:200]
            assert info.value.details().startswith(f"job_id '{job_id[:50]}")
            assert info.value.details().endswith("(message cut)") and len(info.value.details().encode()) <= 1024
            violation = error_details_pb2.BadRequest()
            assert rpc_status.from_call(info.value).details[0].Unpack(violation)
            assert violation.field_violations[0].field == "job_id"

    asyncio.run(_with_server(body))


def test_sigterm_sets_health_not_serving_then_stops():
    async def main():
        handle = _server()
        serving = asyncio.create_task(serve_until_signal(handle, grace_s=1.0))
        await asyncio.sleep(0.3)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=10)
            statuses = [(await watch.read()).status]
            os.kill(os.getpid(), signal.SIGTERM)
            statuses.append((await watch.read()).status)
        await asyncio.wait_for(serving, timeout=10)
        return statuses

    statuses = asyncio.run(main())
    assert statuses == [health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING]


def test_a_second_server_on_a_taken_port_fails_to_start_naming_the_address():
    # gRPC's default (SO_REUSEPORT) would let it bind too and split the connections between the two.
    async def main():
        first = _server()
        await start(first)
        try:
            registration = Registration(pb_grpc.add_DatagenServiceServicer_to_server, _Probe(),
                                        "synthtune.datagen.v1.DatagenService")
            with pytest.raises(OSError, match=f"127.0.0.1:{first.port}: is another process listening there"):
                create_server(f"127.0.0.1:{first.port}", [registration], token=TOKEN)
        finally:
            await first.server.stop(0)

    asyncio.run(main())


def test_a_service_on_a_taken_port_exits_2_saying_so(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = {**os.environ, "SYNTHTUNE_DATA_ROOT": str(tmp_path), "SYNTHTUNE_GRPC_TOKEN": TOKEN,
               "SYNTHTUNE_DATAGEN_LISTEN": address, "SYNTHTUNE_METRICS_PORT": "0"}
        done = subprocess.run([sys.executable, "-m", "datagen_svc"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 2
    assert f"cannot start: could not bind the gRPC server to {address}" in done.stdout + done.stderr
