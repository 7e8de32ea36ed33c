"""The outbound policy in the datagen service: refused before any call, again on resume and on connect."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from datagen_svc.openai_client import ChatClient, EndpointError
from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.outbound import OutboundPolicy
from tests.datagen_svc.conftest import Datagen, InProcessDatagen, fake_client_config, request
from tests.support.fake_openai import Status


def refusal(call) -> tuple[str, str]:
    """(field of the violation, message) of a call that must fail with INVALID_ARGUMENT."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    error = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    violation = error_details_pb2.BadRequest()
    assert rpc_status.from_call(error).details[0].Unpack(violation)
    return violation.field_violations[0].field, error.details()


def test_the_metadata_address_is_refused_at_start_before_any_connection(data_root, fake):
    # 127.0.0.1 is denied too, so the fake would see any request that slipped through.
    with InProcessDatagen(data_root, outbound_deny="127.0.0.1/32") as server:
        client = Datagen(server.address, data_root)
        field, message = refusal(lambda: client.start(request("http://169.254.169.254/latest/v1", "imds")))
        assert field == "endpoint.base_url"
        assert "169.254.169.254" in message and "169.254.0.0/16" in message and "SYNTHTUNE_OUTBOUND" in message

        judged = request("http://localhost:9/v1", "judged")  # a name: resolved, then refused
        judged.filters.judge.endpoint.CopyFrom(pb.Endpoint(base_url=fake.base_url, model="judge"))
        field, message = refusal(lambda: client.start(judged))
        assert field == "endpoint.base_url" and "localhost" in message

        judged.endpoint.base_url = "http://[::1]:9/v1"
        field, message = refusal(lambda: client.start(judged))
        assert field == "filters.judge.endpoint.base_url" and "127.0.0.1/32" in message
        client.close()
    assert fake.requests == []
    assert not (data_root / "jobs" / "datagen").exists() or not list((data_root / "jobs" / "datagen").iterdir())


def test_a_curate_jobs_judge_is_checked_too(data_root):
    curate = pb.StartGenerationRequest(dataset_name="curated", mode=pb.GENERATION_MODE_CURATE,
                                       source_path="datasets/source.jsonl")
    curate.filters.judge.endpoint.CopyFrom(pb.Endpoint(base_url="http://metadata.google.internal/v1", model="j"))
    with InProcessDatagen(data_root) as server:
        client = Datagen(server.address, data_root)
        field, message = refusal(lambda: client.start(curate))
        assert field == "filters.judge.endpoint.base_url" and "deny entry metadata.google.internal" in message
        client.close()


def test_resume_checks_the_urls_again(data_root, fake):
    fake.default = Status(401)  # fatal: the job fails at once
    with InProcessDatagen(data_root) as server:
        client = Datagen(server.address, data_root)
        job = client.wait(client.start(request(fake.base_url, "recheck")).job_id)
        assert job.state == pb.JOB_STATE_FAILED
        server.manager.outbound = OutboundPolicy.from_settings(deny="127.0.0.0/8")  # as if DNS had changed
        seen = len(fake.requests)
        field, message = refusal(lambda: client.resume(job.job_id))
        assert field == "endpoint.base_url" and "127.0.0.0/8" in message
        assert client.get(job.job_id).state == pb.JOB_STATE_FAILED and len(fake.requests) == seen
        client.close()


def test_the_client_checks_every_connection_and_still_reaches_an_allowed_endpoint(fake):
    async def chat(policy: OutboundPolicy) -> str:
        async with ChatClient(fake_client_config(fake, outbound=policy)) as client:
            return (await client.chat(messages=[{"role": "user", "content": "hi"}])).content

    assert asyncio.run(chat(OutboundPolicy.from_settings()))  # through the guarded transport
    calls = len(fake.requests)
    with pytest.raises(EndpointError) as info:
        asyncio.run(chat(OutboundPolicy.from_settings(deny="127.0.0.0/8")))
    assert info.value.fatal and "127.0.0.0/8" in info.value.message and fake.base_url in info.value.message
    assert len(fake.requests) == calls  # refused before connecting
