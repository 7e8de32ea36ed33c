"""Fixtures for the datagen service: a real server process, an in-process one, the fake endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import grpc
import pytest

from datagen_svc.config import load_settings
from datagen_svc.manager import JobManager
from datagen_svc.server import build_server
from synthtune import records
from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.datagen.v1 import datagen_pb2_grpc
from synthtune.grpc_client import open_channel
from synthtune.grpc_server import start as start_server
from tests.support.fake_openai import FakeOpenAI
from tests.support.procs import TEST_GRPC_TOKEN, ServiceProcess, running_service, start_service

RPC_TIMEOUT_S = 10
# Small backoff so retry tests take tenths of a second; Retry-After from the fake still rules.
FAST_RETRY_ENV = {"SYNTHTUNE_DATAGEN_RETRY_INITIAL_S": "0.02", "SYNTHTUNE_DATAGEN_RETRY_MAX_S": "0.2"}
TERMINAL_STATES = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}


def service_env(data_root: Path, **extra: str) -> dict[str, str]:
    return {"SYNTHTUNE_DATA_ROOT": str(data_root), **FAST_RETRY_ENV, **extra}


def start_datagen(data_root: Path, log_path: Path, **extra_env: str) -> ServiceProcess:
    return start_service(
        "datagen_svc",
        listen_var="SYNTHTUNE_DATAGEN_LISTEN",
        env=service_env(data_root, **extra_env),
        log_path=log_path,
    )


class Datagen:
    """A client of one datagen server, with the helpers the tests share."""

    def __init__(self, address: str, data_root: Path, *, token: str = TEST_GRPC_TOKEN):
        self.address = address
        self.data_root = data_root
        self.channel = open_channel(address, token=token)
        self.stub = datagen_pb2_grpc.DatagenServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def start(self, request: pb.StartGenerationRequest) -> pb.GenerationJob:
        return self.stub.StartGeneration(request, timeout=RPC_TIMEOUT_S).job

    def get(self, job_id: str) -> pb.GenerationJob:
        return self.stub.GetGeneration(pb.GetGenerationRequest(job_id=job_id), timeout=RPC_TIMEOUT_S).job

    def cancel(self, job_id: str) -> pb.GenerationJob:
        return self.stub.CancelGeneration(
            pb.CancelGenerationRequest(job_id=job_id), timeout=RPC_TIMEOUT_S
        ).job

    def resume(self, job_id: str, token: str = "") -> pb.GenerationJob:
        request = pb.ResumeGenerationRequest(job_id=job_id, token=token)
        return self.stub.ResumeGeneration(request, timeout=RPC_TIMEOUT_S).job

    def events(self, job_id: str, *, after_seq: int = 0, timeout_s: float = 30) -> list[pb.GenerationEvent]:
        """Every event after `after_seq` until the stream closes (the job ended)."""
        request = pb.WatchGenerationRequest(job_id=job_id, after_seq=after_seq)
        return list(self.stub.WatchGeneration(request, timeout=timeout_s))

    def wait(self, job_id: str, *, timeout_s: float = 30) -> pb.GenerationJob:
        """Follow the watch stream to its end and return the finished job."""
        self.events(job_id, timeout_s=timeout_s)
        job = self.get(job_id)
        assert job.state in TERMINAL_STATES, job
        return job

    def wait_for(self, job_id: str, predicate, *, timeout_s: float = 20) -> pb.GenerationJob:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if predicate(job):
                return job
            time.sleep(0.02)
        raise AssertionError(f"condition not met in {timeout_s}s; job: {job}")

    def dataset(self, job: pb.GenerationJob) -> Path:
        return self.data_root / job.dataset_path

    def partial(self, job: pb.GenerationJob) -> Path:
        path = self.dataset(job)
        return path.with_name(path.name + ".partial")


def request(
    fake_url: str,
    name: str,
    *,
    mode: int = pb.GENERATION_MODE_FIXED,
    num_rows: int = 5,
    concurrency: int = 2,
    token: str = "",
    timeout_s: float = 2.0,
    max_retries: int | None = 5,
    **fields,
) -> pb.StartGenerationRequest:
    """A valid StartGenerationRequest against `fake_url`; `fields` override top-level fields."""
    defaults = {
        pb.GENERATION_MODE_FIXED: {"prompt_template": "Write a short greeting."},
        pb.GENERATION_MODE_SELF_INSTRUCT: {"topic": "home cooking"},
        pb.GENERATION_MODE_FROM_INSTRUCTIONS: {"instructions": [f"Question {i}?" for i in range(num_rows)]},
    }.get(mode, {})
    endpoint = pb.Endpoint(base_url=fake_url, model="fake-model", token=token, request_timeout_s=timeout_s)
    if max_retries is not None:
        endpoint.max_retries = max_retries
    return pb.StartGenerationRequest(
        dataset_name=name,
        endpoint=endpoint,
        limits=pb.Limits(concurrency=concurrency),
        num_rows=num_rows,
        mode=mode,
        **{**defaults, **fields},
    )


def fake_client_config(fake: FakeOpenAI, **overrides):
    """A ChatClient config for `fake`, with fast backoff; `overrides` replace fields."""
    from datagen_svc.openai_client import ClientConfig

    values = {
        "base_url": fake.base_url,
        "model": "fake-model",
        "token": "",
        "skip_tls_verify": False,
        "timeout_s": 2.0,
        "max_retries": 3,
        "concurrency": 4,
        "requests_per_minute": 0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    return ClientConfig(**{**values, **overrides})


def rows_of(path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    records.require_valid(lines)  # the shared schema: every row has a non-empty output
    return [json.loads(line) for line in lines]


def assert_published(datagen, job, rows: int) -> list[dict]:
    """The job succeeded and its file is final, complete and matches the recorded checksum."""
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    path = datagen.dataset(job)
    assert not datagen.partial(job).exists()
    data = path.read_bytes()
    assert job.sha256 == hashlib.sha256(data).hexdigest() and job.size_bytes == len(data)
    found = rows_of(path)
    assert len(found) == job.counts.kept == rows
    return found


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def module_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("datagen-root")


@pytest.fixture(scope="module")
def datagen_process(module_root) -> Iterator[ServiceProcess]:
    """One real `python -m datagen_svc` per test module (tests use distinct dataset names)."""
    with running_service(
        "datagen_svc",
        listen_var="SYNTHTUNE_DATAGEN_LISTEN",
        env=service_env(module_root),
        log_path=module_root.parent / f"{module_root.name}.log",
    ) as service:
        yield service


@pytest.fixture
def datagen(datagen_process, module_root) -> Iterator[Datagen]:
    client = Datagen(datagen_process.address, module_root)
    yield client
    client.close()


class InProcessDatagen:
    """The server in a background event loop of this process, for tests that inspect the manager."""

    def __init__(self, data_root: Path, **overrides):
        self.settings = load_settings(
            data_root=data_root,
            grpc_token=TEST_GRPC_TOKEN,
            retry_initial_s=0.02,
            retry_max_s=0.2,
            **overrides,
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="datagen-inproc", daemon=True)
        self.manager: JobManager | None = None
        self.handle = None

    def call(self, coro, timeout_s: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def __enter__(self) -> Self:
        self.thread.start()

        async def boot():
            self.manager = JobManager(settings=self.settings)
            self.manager.recover()
            self.handle = build_server(self.settings, "127.0.0.1:0", manager=self.manager)
            await start_server(self.handle)

        self.call(boot())
        self.address = f"127.0.0.1:{self.handle.port}"
        return self

    def __exit__(self, *exc) -> None:
        async def down():
            await self.manager.shutdown()
            await self.handle.server.stop(0)

        self.call(down())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def status_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()
