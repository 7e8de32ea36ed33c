"""Bad input over real gRPC: precise status codes and messages that name the field."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.datagen.v1 import datagen_pb2_grpc
from tests.datagen_svc.conftest import RPC_TIMEOUT_S, request
from tests.support.fake_openai import Status

URL = "http://127.0.0.1:9/v1"  # never called: validation comes first
FIXED, SELF, LIST = (
    pb.GENERATION_MODE_FIXED,
    pb.GENERATION_MODE_SELF_INSTRUCT,
    pb.GENERATION_MODE_FROM_INSTRUCTIONS,
)


def _endpoint(**fields) -> pb.Endpoint:
    return pb.Endpoint(**{"base_url": URL, "model": "m", **fields})


# (case id, request changes, field named in the error)
BAD_REQUESTS = [
    ("no dataset name", {"dataset_name": ""}, "dataset_name"),
    ("dotdot name", {"dataset_name": "../escape"}, "dataset_name"),
    ("bare dotdot", {"dataset_name": ".."}, "dataset_name"),
    ("slash in name", {"dataset_name": "a/b"}, "dataset_name"),
    ("absolute name", {"dataset_name": "/etc/passwd"}, "dataset_name"),
    ("hidden name", {"dataset_name": ".hidden"}, "dataset_name"),
    ("zero rows", {"num_rows": 0}, "num_rows"),
    ("negative rows", {"num_rows": -5}, "num_rows"),
    ("absurd rows", {"num_rows": 2_000_000_000}, "num_rows"),
    ("no endpoint", {"endpoint": None}, "endpoint.base_url"),
    ("ftp url", {"endpoint": _endpoint(base_url="ftp://host/v1")}, "endpoint.base_url"),
    ("no scheme", {"endpoint": _endpoint(base_url="localhost:8000/v1")}, "endpoint.base_url"),
    ("no host", {"endpoint": _endpoint(base_url="http:///v1")}, "endpoint.base_url"),
    ("bad port", {"endpoint": _endpoint(base_url="http://h:99999/v1")}, "endpoint.base_url"),
    ("credentials in url", {"endpoint": _endpoint(base_url="http://u:secret@h/v1")}, "endpoint.base_url"),
    ("query in url", {"endpoint": _endpoint(base_url="http://h/v1?api_key=x")}, "endpoint.base_url"),
    ("no model", {"endpoint": _endpoint(model="")}, "endpoint.model"),
    ("token with newline", {"endpoint": _endpoint(token="abc\ndef")}, "endpoint.token"),
    # Not a header value: httpx refused it on the first call, so the job was accepted and then failed.
    ("non-ascii token", {"endpoint": _endpoint(token="tökén")}, "endpoint.token"),
    ("control character in token", {"endpoint": _endpoint(token="abc\x00def")}, "endpoint.token"),
    ("negative timeout", {"endpoint": _endpoint(request_timeout_s=-1)}, "endpoint.request_timeout_s"),
    ("huge timeout", {"endpoint": _endpoint(request_timeout_s=1e9)}, "endpoint.request_timeout_s"),
    ("nan timeout", {"endpoint": _endpoint(request_timeout_s=float("nan"))}, "endpoint.request_timeout_s"),
    ("negative retries", {"endpoint": _endpoint(max_retries=-1)}, "endpoint.max_retries"),
    ("too many retries", {"endpoint": _endpoint(max_retries=1000)}, "endpoint.max_retries"),
    ("negative concurrency", {"limits": pb.Limits(concurrency=-1)}, "limits.concurrency"),
    ("huge concurrency", {"limits": pb.Limits(concurrency=100_000)}, "limits.concurrency"),
    ("negative rpm", {"limits": pb.Limits(requests_per_minute=-1)}, "limits.requests_per_minute"),
    ("hot temperature", {"sampling": pb.Sampling(temperature=2.5)}, "sampling.temperature"),
    ("negative temperature", {"sampling": pb.Sampling(temperature=-0.1)}, "sampling.temperature"),
    ("zero top_p", {"sampling": pb.Sampling(top_p=0)}, "sampling.top_p"),
    ("top_p over one", {"sampling": pb.Sampling(top_p=1.5)}, "sampling.top_p"),
    ("zero max_tokens", {"sampling": pb.Sampling(max_tokens=0)}, "sampling.max_tokens"),
    ("no mode", {"mode": pb.GENERATION_MODE_UNSPECIFIED}, "mode"),
    ("unknown mode", {"mode": 42}, "mode"),
    ("fixed without prompt", {"mode": FIXED, "prompt_template": "  "}, "prompt_template"),
    ("fixed with instructions", {"mode": FIXED, "instructions": ["x"]}, "instructions"),
    ("self_instruct without topic", {"mode": SELF, "topic": "", "seed_examples": []}, "topic"),
    (
        "self_instruct empty seed",
        {"mode": SELF, "topic": "", "seed_examples": ["ok", " "]},
        "seed_examples[1]",
    ),
    ("list without instructions", {"mode": LIST, "instructions": []}, "instructions"),
    ("list with blank item", {"mode": LIST, "instructions": ["a", ""], "num_rows": 2}, "instructions[1]"),
    ("list shorter than rows", {"mode": LIST, "instructions": ["a", "b"], "num_rows": 3}, "num_rows"),
    ("list with topic", {"mode": LIST, "instructions": ["a"], "num_rows": 1, "topic": "t"}, "topic"),
]


def bad_request(changes: dict) -> pb.StartGenerationRequest:
    mode = changes.get("mode", FIXED)
    base = request(URL, "valid-name", mode=mode if mode in (FIXED, SELF, LIST) else FIXED, num_rows=2)
    if mode not in (FIXED, SELF, LIST):
        base.prompt_template = ""
    for key, value in changes.items():
        if value is None:
            base.ClearField(key)
        elif isinstance(value, list):
            del getattr(base, key)[:]
            getattr(base, key).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(base, key).CopyFrom(value)
        else:
            setattr(base, key, value)
    return base


@pytest.mark.parametrize("changes, field", [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_start_requests_are_invalid_argument_naming_the_field(datagen, changes, field):
    with pytest.raises(grpc.RpcError) as info:
        datagen.start(bad_request(changes))
    error = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field.split("[")[0] in error.details()
    status = rpc_status.from_call(error)
    violation = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(violation)
    assert violation.field_violations[0].field == field


def test_nothing_is_written_for_a_refused_request(datagen):
    before = sorted(p.name for p in (datagen.data_root / "jobs" / "datagen").iterdir())
    with pytest.raises(grpc.RpcError):
        datagen.start(bad_request({"num_rows": 0}))
    after = sorted(p.name for p in (datagen.data_root / "jobs" / "datagen").iterdir())
    assert before == after
    assert not list((datagen.data_root).glob("**/valid-name*"))


def test_existing_dataset_name_is_already_exists(datagen, fake):
    (datagen.data_root / "datasets" / "taken.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    with pytest.raises(grpc.RpcError) as info:
        datagen.start(request(fake.base_url, "taken"))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "taken" in info.value.details()


def test_a_name_held_by_a_stopped_job_with_rows_is_already_exists(datagen, fake):
    fake.default = Status(401)
    job = datagen.wait(datagen.start(request(fake.base_url, "held")).job_id)
    assert job.state == pb.JOB_STATE_FAILED
    datagen.partial(job).write_text('{"instruction": "a", "output": "b"}\n')  # as if rows had arrived
    with pytest.raises(grpc.RpcError) as info:
        datagen.start(request(fake.base_url, "held"))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert job.job_id in info.value.details() and "resume" in info.value.details()


@pytest.mark.parametrize("rpc", ["get", "cancel", "resume", "watch"])
def test_unknown_job_is_not_found_and_empty_id_is_invalid(datagen, rpc):
    call = {
        "get": lambda job_id: datagen.get(job_id),
        "cancel": lambda job_id: datagen.cancel(job_id),
        "resume": lambda job_id: datagen.resume(job_id),
        "watch": lambda job_id: datagen.events(job_id, timeout_s=RPC_TIMEOUT_S),
    }[rpc]
    with pytest.raises(grpc.RpcError) as info:
        call("0" * 32)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "job" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        call("")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "job_id" in info.value.details()


def test_negative_after_seq_is_invalid(datagen, fake):
    job = datagen.wait(datagen.start(request(fake.base_url, "seq-check", num_rows=1)).job_id)
    with pytest.raises(grpc.RpcError) as info:
        list(
            datagen.stub.WatchGeneration(
                pb.WatchGenerationRequest(job_id=job.job_id, after_seq=-1), timeout=5
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "after_seq" in info.value.details()


def test_finished_jobs_cannot_be_resumed_or_cancelled(datagen, fake):
    job = datagen.wait(datagen.start(request(fake.base_url, "done-once", num_rows=1)).job_id)
    assert job.state == pb.JOB_STATE_SUCCEEDED
    for call in (lambda: datagen.resume(job.job_id), lambda: datagen.cancel(job.job_id)):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "succeeded" in info.value.details()


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcdef"])
def test_calls_without_the_right_token_are_unauthenticated(datagen_process, fake, token):
    channel = grpc.insecure_channel(datagen_process.address)
    stub = datagen_pb2_grpc.DatagenServiceStub(channel)
    metadata = [("authorization", f"Bearer {token}")] if token else []
    calls = [
        lambda: stub.StartGeneration(request(fake.base_url, "sneaky"), metadata=metadata, timeout=5),
        lambda: stub.GetGeneration(pb.GetGenerationRequest(job_id="x"), metadata=metadata, timeout=5),
        lambda: stub.ListGenerations(pb.ListGenerationsRequest(), metadata=metadata, timeout=5),
        lambda: stub.CancelGeneration(pb.CancelGenerationRequest(job_id="x"), metadata=metadata, timeout=5),
        lambda: stub.ResumeGeneration(pb.ResumeGenerationRequest(job_id="x"), metadata=metadata, timeout=5),
        lambda: list(
            stub.WatchGeneration(pb.WatchGenerationRequest(job_id="x"), metadata=metadata, timeout=5)
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()
    assert fake.chat_requests() == []  # nothing started
