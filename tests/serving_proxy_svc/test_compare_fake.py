"""Comparisons against the scriptable fake endpoint: what is sent, concurrency, timeouts, error mapping.

The real vLLM can't be made to hang, drop a request or answer 500 on demand;
the fake (tests/support/fake_openai.py) can, and it records every request.
"""

from __future__ import annotations

import time

import grpc
import pytest

from synthtune.serving.v1 import serving_pb2 as pb
from tests.serving_proxy_svc.conftest import rpc_error, write_adapter
from tests.support.fake_openai import FakeOpenAI, Hang, Reply, Status

ADAPTER = "faq-v3"
LATENCY_S = 0.3


@pytest.fixture
def fake(data_root):
    adapters = data_root / "adapters"
    adapters.mkdir()
    cards = [{"id": "fake-model", "root": "/models/fake-model"},
             {"id": ADAPTER, "root": f"{adapters.resolve()}/{ADAPTER}", "parent": "fake-model"}]
    with FakeOpenAI(models=cards) as endpoint:
        yield endpoint


@pytest.fixture
def proxy(make_proxy, data_root, fake):
    rows = [{"instruction": f"q{i}", "output": f"Answer to: q{i}" if i % 2 == 0 else "something else"}
            for i in range(4)]
    write_adapter(data_root / "adapters", ADAPTER, base="fake-model", eval_rows=rows)
    return make_proxy(data_root, vllm_url=fake.base_url, vllm_token="default-vllm-token-123",
                      vllm_generation_timeout_s=2.0)


def test_both_sides_get_identical_parameters_concurrently(proxy, fake):
    fake.latency_s = LATENCY_S
    started = time.monotonic()
    reply = proxy.compare("Name a colour.", ADAPTER, system_prompt="Be brief.",
                          sampling=pb.Sampling(top_p=0.9, seed=7, max_tokens=12))
    elapsed = time.monotonic() - started
    requests = fake.chat_requests()
    assert sorted(r.body["model"] for r in requests) == sorted(["fake-model", ADAPTER])
    bodies = [{k: v for k, v in r.body.items() if k != "model"} for r in requests]
    assert bodies[0] == bodies[1] == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
        "temperature": 0.0, "top_p": 0.9, "seed": 7, "max_tokens": 12,
    }
    # Concurrent, not one after the other.
    assert fake.max_in_flight == 2 and elapsed < 2 * LATENCY_S
    assert reply.prompt_format == "chat"
    assert (reply.base.model, reply.adapter.model) == ("fake-model", ADAPTER)
    for side in (reply.base, reply.adapter):
        assert side.text == "Answer to: Name a colour." and side.finish_reason == "stop"
        assert (side.prompt_tokens, side.completion_tokens) == (7, 5) and side.latency_ms >= LATENCY_S * 1000 * 0.9


def test_defaults_are_greedy_with_the_configured_max_tokens(proxy, fake):
    proxy.compare("Hi", ADAPTER)
    for request in fake.chat_requests():
        assert request.body["temperature"] == 0 and request.body["max_tokens"] == 256
        assert "top_p" not in request.body and "seed" not in request.body


def test_the_vllm_token_is_sent_and_a_request_token_wins(proxy, fake):
    proxy.compare("Hi", ADAPTER)
    assert {r.headers.get("Authorization") for r in fake.chat_requests()} == {"Bearer default-vllm-token-123"}
    fake.requests.clear()
    proxy.compare("Hi", ADAPTER, token="request-token-456")
    assert {r.headers.get("Authorization") for r in fake.chat_requests()} == {"Bearer request-token-456"}


def test_a_hung_vllm_times_out_as_unavailable(proxy, fake):
    fake.script(Hang(), Hang())
    started = time.monotonic()
    error = rpc_error(proxy.compare, "Hi", ADAPTER)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "did not answer" in error.details() and fake.base_url.removesuffix("/v1") in error.details()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(("status", "code", "words"), [
    (Status(404, message="The model `x` does not exist."), grpc.StatusCode.NOT_FOUND, "does not serve"),
    (Status(400, message="maximum context length is 512"), grpc.StatusCode.INVALID_ARGUMENT, "maximum context"),
    (Status(401), grpc.StatusCode.UNAUTHENTICATED, "vLLM token"),
    (Status(500, message="engine died"), grpc.StatusCode.UNAVAILABLE, "engine died"),
    (Status(503), grpc.StatusCode.UNAVAILABLE, "HTTP 503"),
])
def test_vllm_errors_map_to_precise_statuses(proxy, fake, status, code, words):
    fake.script(status, status)
    error = rpc_error(proxy.compare, "Hi", ADAPTER)
    assert error.code() == code and words in error.details(), error.details()


def test_one_side_failing_fails_the_call(proxy, fake):
    fake.latency_s = 0.05
    fake.script(Status(500), Reply("fine"))
    assert rpc_error(proxy.compare, "Hi", ADAPTER).code() == grpc.StatusCode.UNAVAILABLE


def test_a_served_name_that_is_not_loaded_is_not_found(proxy, fake):
    error = rpc_error(proxy.compare, "Hi", ADAPTER, served_name="faq-v9")
    assert error.code() == grpc.StatusCode.NOT_FOUND and "not loaded" in error.details()
    error = rpc_error(proxy.compare, "Hi", ADAPTER, served_name="fake-model")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "base model" in error.details()
    assert fake.chat_requests() == []


def test_a_repeated_comparison_is_checked_against_a_fresh_listing(proxy, fake, data_root):
    # The second comparison asks with the names the first one's /v1/models gave while it reads
    # /v1/models again; its answers count only if the listing still names those models.
    proxy.compare("Hi", ADAPTER)
    fake.requests.clear()
    proxy.compare("Hi", ADAPTER)
    assert sorted(r.body["model"] for r in fake.chat_requests()) == ["fake-model", ADAPTER]  # asked once
    # Reloaded under another served name: the remembered names' answers are dropped, the served ones asked.
    fake.models = [fake.models[0], {**fake.models[1], "id": "faq-v3-b"}]
    fake.requests.clear()
    reply = proxy.compare("Hi", ADAPTER)
    assert (reply.base.model, reply.adapter.model) == ("fake-model", "faq-v3-b")
    assert sorted(r.body["model"] for r in fake.chat_requests()[-2:]) == ["fake-model", "faq-v3-b"]
    # Unloaded (a restarted vLLM): NOT_FOUND from the listing, whatever the guessed calls got.
    fake.models = fake.models[:1]
    error = rpc_error(proxy.compare, "Hi", ADAPTER)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "not loaded" in error.details()
    # Loaded from another adapter's folder under the same name: refused, as on a first comparison.
    fake.models = [fake.models[0], {"id": "faq-v3-b", "root": "/elsewhere/faq-v3-b", "parent": "fake-model"}]
    error = rpc_error(proxy.compare, "Hi", ADAPTER, served_name="faq-v3-b")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_batch_streams_rows_then_the_summary(proxy, fake):
    events = proxy.compare_batch(ADAPTER)
    rows = [e.row for e in events if e.WhichOneof("kind") == "row"]
    assert [e.WhichOneof("kind") for e in events] == ["row"] * 4 + ["summary"]
    assert [r.index for r in rows] == [0, 1, 2, 3] and [r.prompt for r in rows] == ["q0", "q1", "q2", "q3"]
    # The fake answers "Answer to: <instruction>": rows 0 and 2 expect exactly that.
    assert [r.adapter_exact for r in rows] == [True, False, True, False] == [r.base_exact for r in rows]
    assert rows[0].adapter_chrf == 100.0 and 0 <= rows[1].adapter_chrf < 50
    summary = events[-1].summary
    assert summary.rows == 4 and summary.failed_rows == 0 and summary.prompt_format == "chat"
    assert summary.dataset_path == f"adapters/{ADAPTER}/eval.jsonl"
    assert summary.adapter.exact_match_rate == 0.5 and summary.adapter.stop_rate == 1.0
    assert summary.adapter.chrf == pytest.approx(sum(r.adapter_chrf for r in rows) / 4)
    assert summary.adapter.latency_p50_ms > 0 and summary.adapter.latency_p95_ms >= summary.adapter.latency_p50_ms
    # Rows are sent as training formatted them: the instruction as the user turn.
    assert fake.chat_requests()[0].body["messages"] == [{"role": "user", "content": "q0"}]


def test_batch_reports_a_refused_row_and_carries_on(proxy, fake, data_root):
    (data_root / "datasets").mkdir()
    (data_root / "datasets" / "two.jsonl").write_text(
        '{"instruction": "too long", "output": "x"}\n{"instruction": "q1", "output": "Answer to: q1"}\n')
    fake.script(Status(400, message="maximum context length is 512"), Status(400, message="maximum context length"))
    events = proxy.compare_batch(ADAPTER, dataset_path="datasets/two.jsonl", limit=2)
    first, second, summary = events[0].row, events[1].row, events[2].summary
    assert "maximum context length" in first.error and not first.HasField("adapter") and not first.adapter_exact
    assert second.error == "" and second.adapter_exact
    assert (summary.rows, summary.failed_rows, summary.adapter.exact_match_rate) == (2, 1, 0.5)
    assert summary.dataset_path == "datasets/two.jsonl"


def test_batch_stops_on_a_systemic_error(proxy, fake):
    fake.script(Reply("a"), Reply("b"), Status(404), Status(404))
    stream = proxy.stub.CompareBatch(pb.CompareBatchRequest(adapter_name=ADAPTER), timeout=60)
    first = next(stream)
    assert first.WhichOneof("kind") == "row"
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_batch_limit_takes_the_first_rows(proxy, fake):
    events = proxy.compare_batch(ADAPTER, limit=2)
    assert [e.row.index for e in events[:-1]] == [0, 1] and events[-1].summary.rows == 2
