"""The control plane's gRPC clients (core.clients) against the real datagen service: every call,
unary and streaming, carries the bearer token and the request id, as the interceptor did."""

from __future__ import annotations

import json
import time

import pytest

from control_plane.datasets.datagen import datagen_client
from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.errors import NotFound
from synthtune.logs import request_id_var


def _access_line(service, request_id: str, rpc: str) -> dict:
    """The service's "rpc finished" log line for `request_id`, waited for (the log is written as it goes)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for raw in service.log_text().splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("message") == "rpc finished" and line.get("request_id") == request_id:
                assert line.get("rpc", "").endswith(f"/{rpc}"), line
                return line
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id} in:\n{service.log_text()[-3000:]}")


@pytest.mark.parametrize("kind", ["unary", "stream"])
def test_calls_carry_the_token_and_the_current_request_id(datagen, kind):
    client = datagen_client()
    request_id = f"client-test-{kind}-{time.monotonic_ns()}"
    reset = request_id_var.set(request_id)
    try:
        with pytest.raises(NotFound):  # authenticated (else UNAUTHENTICATED), then the job is unknown
            if kind == "unary":
                client.call("GetGeneration", pb.GetGenerationRequest(job_id="no-such-job"))
            else:
                list(client.stream("WatchGeneration", pb.WatchGenerationRequest(job_id="no-such-job"), timeout_s=10))
    finally:
        request_id_var.reset(reset)
    rpc = "GetGeneration" if kind == "unary" else "WatchGeneration"
    assert _access_line(datagen, request_id, rpc)["code"] == "NOT_FOUND"


def test_outside_a_request_each_call_gets_a_fresh_request_id(datagen):
    client = datagen_client()
    for _ in range(2):
        with pytest.raises(NotFound):
            client.call("GetGeneration", pb.GetGenerationRequest(job_id="no-such-job"))
    ids = []
    deadline = time.monotonic() + 10
    while len(ids) < 2 and time.monotonic() < deadline:
        ids = [line["request_id"] for line in map(_json, datagen.log_text().splitlines())
               if line.get("message") == "rpc finished" and line.get("rpc", "").endswith("/GetGeneration")]
        time.sleep(0.05)
    assert len(ids) == 2 and ids[0] != ids[1] and all(len(i) == 32 for i in ids), ids


def _json(raw: str) -> dict:
    try:
        return json.loads(raw)
    except ValueError:
        return {}
