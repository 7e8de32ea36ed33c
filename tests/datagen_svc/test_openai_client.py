"""The endpoint client against the fake: retries, Retry-After, timeouts, limits, auth."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest

from datagen_svc.openai_client import ChatClient, ClientConfig, EndpointError
from tests.conftest import require_system_dep
from tests.datagen_svc.conftest import fake_client_config
from tests.support.fake_openai import FakeOpenAI, Hang, Malformed, Reply, Status

MESSAGES = [{"role": "user", "content": "Say hi"}]


def config(fake: FakeOpenAI, **overrides) -> ClientConfig:
    return fake_client_config(fake, **{"token": "client-test-token", **overrides})


def chat(fake: FakeOpenAI, *, calls: int = 1, **overrides):
    async def go():
        async with ChatClient(config(fake, **overrides)) as client:
            return await asyncio.gather(
                *(client.chat(messages=MESSAGES, sampling={"max_tokens": 8}) for _ in range(calls))
            )

    return asyncio.run(go())


def test_sends_model_messages_sampling_and_bearer_token(fake):
    [result] = chat(fake)
    assert result.content == "Answer to: Say hi"
    assert (result.prompt_tokens, result.completion_tokens) == (7, 5)
    [sent] = fake.chat_requests()
    assert sent.headers["Authorization"] == "Bearer client-test-token"
    assert sent.body == {"model": "fake-model", "messages": MESSAGES, "max_tokens": 8}


@pytest.mark.parametrize(
    "fault", [Status(500), Status(502), Status(503), Status(408), Malformed(), Status(429, retry_after="0")]
)
def test_transient_faults_are_retried(fake, fault):
    fake.script(fault, fault)
    [result] = chat(fake)
    assert result.content == "Answer to: Say hi"
    assert len(fake.chat_requests()) == 3


def test_retry_after_is_honoured(fake):
    fake.script(Status(429, retry_after="0.3"))
    chat(fake)
    first, second = fake.chat_requests()
    assert second.at - first.at >= 0.3  # the client's own backoff here is at most 0.05 s


def test_a_hung_socket_times_out_and_is_retried(fake):
    fake.script(Hang())
    started = time.monotonic()
    [result] = chat(fake, timeout_s=0.3)
    assert result.content and 0.3 <= time.monotonic() - started < 2


def test_gives_up_with_a_clear_reason(fake):
    fake.default = Status(503, message="overloaded")
    with pytest.raises(EndpointError) as info:
        chat(fake, max_retries=2)
    assert info.value.message == "endpoint answered HTTP 503: overloaded (gave up after 3 attempts)"
    assert not info.value.fatal and len(fake.chat_requests()) == 3


@pytest.mark.parametrize("code, hint", [(401, "check endpoint.token"), (404, "check endpoint.base_url")])
def test_auth_and_missing_model_are_fatal_and_not_retried(fake, code, hint):
    fake.script(Status(code, message="nope"))
    with pytest.raises(EndpointError) as info:
        chat(fake)
    assert info.value.fatal and hint in info.value.message
    assert len(fake.chat_requests()) == 1


def test_a_token_echoed_in_an_error_is_scrubbed(fake):
    fake.script(Status(400, message="bad key client-test-token"))
    with pytest.raises(EndpointError) as info:
        chat(fake)
    assert "client-test-token" not in info.value.message and "[REDACTED]" in info.value.message


def test_empty_content_is_returned_not_retried(fake):
    fake.script(Reply(""))
    [result] = chat(fake)
    assert result.content == "" and len(fake.chat_requests()) == 1


def test_concurrency_is_bounded(fake):
    fake.latency_s = 0.1
    chat(fake, calls=12, concurrency=3)
    assert fake.max_in_flight == 3


def test_rpm_limit_paces_requests(fake):
    # 600 rpm = one every 0.1 s after a burst of `concurrency` (2): 6 calls need >= 0.4 s.
    started = time.monotonic()
    chat(fake, calls=6, concurrency=2, requests_per_minute=600)
    assert time.monotonic() - started >= 0.35  # load only lengthens this: the strict bound
    # At the server the first arrival can be recorded late under load, shortening the spread;
    # unpaced, six calls two at a time arrive within a few milliseconds.
    arrivals = [r.at for r in fake.chat_requests()]
    assert arrivals[-1] - arrivals[0] >= 0.2


def test_connection_errors_are_retried_then_reported(tmp_path):
    closed = FakeOpenAI().start()
    closed.close()  # the port now refuses connections
    with pytest.raises(EndpointError) as info:
        chat(closed, max_retries=1)
    assert info.value.message.startswith("connection error: ConnectError")
    assert info.value.message.endswith("(gave up after 2 attempts)")


@pytest.fixture
def self_signed(tmp_path):
    require_system_dep(shutil.which("openssl") is not None, "openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_verification_and_its_skip(self_signed):
    with FakeOpenAI(tls=self_signed) as fake:
        assert fake.base_url.startswith("https://")
        with pytest.raises(EndpointError) as info:
            chat(fake)
        assert info.value.fatal and "skip_tls_verify" in info.value.message  # untrusted: no pointless retries
        [result] = chat(fake, skip_tls_verify=True)
        assert result.content == "Answer to: Say hi"
