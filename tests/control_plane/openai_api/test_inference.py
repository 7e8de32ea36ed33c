"""/v1/chat/completions and /v1/completions through the official SDK, relayed to vLLM.

Against the real vLLM (tiny Phi-3 on the CPU) behind the real serving proxy, in this process:
greedy answers streamed and not, completions, an adapter loaded on first use (and without
autoload, a 404 that says how to load it), the hot path asking neither the proxy nor the DB,
the stream arriving while it is generated. Against a fake vLLM (fast): the relay's own errors,
vLLM's key sent and never logged, a vLLM or proxy that is down.
"""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack

import httpx
import openai
import pytest
from rest_framework.authtoken.models import Token

from control_plane.deployments import selectors as deployment_selectors
from control_plane.deployments.models import Deployment
from control_plane.openai_api import relay
from tests.control_plane.deployments.conftest import unload_everything
from tests.control_plane.openai_api.conftest import sdk_client
from tests.control_plane.runs.factories import AdapterFactory as AdapterRowFactory
from tests.serving_proxy_svc.conftest import AdapterFactory, InProcessProxy
from tests.support.fake_openai import FakeOpenAI, Status, fake_openai_process
from tests.support.paced_sse import PacedStream
from tests.support.procs import free_port

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "tiny-phi3"
VLLM_KEY = "vllm-key-for-the-relay-0123"
HELLO = [{"role": "user", "content": "Say something about the sea."}]


# --- the real vLLM ---------------------------------------------------------------------------


class Serving:
    """The session's vLLM behind a real proxy (in this process) on a data root of this module's,
    with adapters exported from the tiny Phi-3 (random LoRA weights: no training)."""

    def __init__(self, root, proxy: InProcessProxy, vllm, exporter: AdapterFactory):
        self.root, self.proxy, self.vllm, self.exporter = root, proxy, vllm, exporter

    def adapter(self, stem: str):
        """A fresh exported adapter (never loaded before) and its Adapter row."""
        name = self.exporter.export(self.root, f"{stem}-{uuid.uuid4().hex[:6]}")
        return AdapterRowFactory(name=name, run=None, base_model=BASE, path=f"adapters/{name}")


@pytest.fixture(scope="module")
def serving_module(vllm_server, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("openai-serving")
    (root / "adapters").mkdir()
    with InProcessProxy(root, vllm_url=vllm_server.url) as proxy:
        try:
            yield Serving(root, proxy, vllm_server, AdapterFactory(tiny_models))
        finally:
            unload_everything(proxy.address, vllm_server.url)


@pytest.fixture
def serving(serving_module, cp_settings):
    cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = serving_module.proxy.address
    relay.ROUTES.clear()
    yield serving_module
    relay.ROUTES.clear()


def greedy(**extra):
    return {"temperature": 0, "seed": 7, **extra}


@pytest.mark.slow
def test_chat_streamed_and_not_give_the_same_greedy_answer_and_completions_work(sdk, serving):
    whole = sdk.chat.completions.create(model=BASE, messages=HELLO, max_tokens=24, **greedy())
    assert whole.object == "chat.completion" and whole.model == BASE
    text = whole.choices[0].message.content
    assert text and whole.usage.completion_tokens > 1

    chunks = list(sdk.chat.completions.create(model=BASE, messages=HELLO, max_tokens=24, stream=True, **greedy()))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1 and "".join(pieces) == text
    assert all(c.object == "chat.completion.chunk" for c in chunks)

    completion = sdk.completions.create(model=BASE, prompt="The sea is", max_tokens=8, **greedy())
    assert completion.object == "text_completion" and completion.choices[0].text
    streamed = list(sdk.completions.create(model=BASE, prompt="The sea is", max_tokens=8, stream=True, **greedy()))
    assert "".join(c.choices[0].text for c in streamed) == completion.choices[0].text

    with pytest.raises(openai.BadRequestError) as error:  # vLLM's own 400, relayed as it was
        sdk.chat.completions.create(model=BASE, messages=HELLO, max_tokens=100_000)
    assert error.value.status_code == 400 and error.value.body["message"]


@pytest.mark.slow
def test_a_known_adapter_is_loaded_on_first_use_then_served_from_the_table(sdk, serving, user, monkeypatch):
    adapter = serving.adapter("autoload")
    reply = sdk.chat.completions.create(model=adapter.name, messages=HELLO, max_tokens=8, **greedy())
    assert reply.model == adapter.name and reply.choices[0].message.content
    deployment = Deployment.objects.get(adapter=adapter)
    assert (deployment.state, deployment.target, deployment.owner) == ("loaded", serving.vllm.url, user)
    assert adapter.name in {m.id for m in sdk.models.list().data} and BASE in {m.id for m in sdk.models.list().data}
    base_reply = sdk.chat.completions.create(model=BASE, messages=HELLO, max_tokens=8, **greedy())
    assert base_reply.choices[0].message.content != reply.choices[0].message.content  # the LoRA is applied

    # The hot path: no call to the serving proxy while the table is fresh.
    asked = []
    listing = deployment_selectors.served_models
    monkeypatch.setattr(deployment_selectors, "served_models", lambda **kw: asked.append(kw) or listing(**kw))
    for _ in range(3):
        sdk.chat.completions.create(model=adapter.name, messages=HELLO, max_tokens=2)
    assert asked == []


@pytest.mark.slow
@pytest.mark.parametrize(("token_cache_s", "queries"), [(5, 0), (0, 1)])
def test_the_hot_path_reads_the_db_only_to_authenticate(
    serving, user, client, cp_settings, django_assert_num_queries, token_cache_s, queries
):
    # The token (and its user) is the one query; a token that authenticated a moment ago is
    # trusted for SYNTHTUNE_TOKEN_CACHE_S (core.authentication) without it.
    cp_settings.SYNTHTUNE_TOKEN_CACHE_S = token_cache_s
    key = Token.objects.create(user=user).key
    body = {"model": BASE, "messages": HELLO, "max_tokens": 2}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert client.post("/v1/chat/completions", body, content_type="application/json", **headers).status_code == 200
    with django_assert_num_queries(queries):
        reply = client.post("/v1/chat/completions", body, content_type="application/json", **headers)
    assert reply.status_code == 200 and reply.json()["choices"]


@pytest.mark.slow
def test_without_autoload_an_unloaded_adapter_is_a_404_saying_how_to_load_it(sdk, serving, cp_settings):
    cp_settings.SYNTHTUNE_OPENAI_AUTOLOAD = False
    adapter = serving.adapter("manual")
    with pytest.raises(openai.NotFoundError) as error:
        sdk.chat.completions.create(model=adapter.name, messages=HELLO, max_tokens=2)
    assert error.value.code == "model_not_loaded" and error.value.body["param"] == "model"
    assert f"POST /api/v1/adapters/{adapter.name}/load/" in error.value.message
    assert "SYNTHTUNE_OPENAI_AUTOLOAD" in error.value.message
    assert not Deployment.objects.exists()
    assert adapter.name in {m.id for m in sdk.models.list().data}  # still listed: it can be loaded


@pytest.mark.slow
def test_a_restarted_vllm_that_forgot_an_adapter_gets_it_loaded_again(sdk, serving):
    adapter = serving.adapter("forgotten")
    sdk.chat.completions.create(model=adapter.name, messages=HELLO, max_tokens=2)
    # Unloaded behind the relay's back (as a vLLM restart forgets runtime-loaded adapters).
    serving.proxy.unload(adapter.name, targets=[serving.vllm.url])
    reply = sdk.chat.completions.create(model=adapter.name, messages=HELLO, max_tokens=2)
    assert reply.model == adapter.name  # vLLM's 404 made the relay ask again, and load it again
    assert Deployment.objects.filter(adapter=adapter, state="loaded").exists()


# --- a fake vLLM: the relay's own answers ---------------------------------------------------


@pytest.fixture
def fake_vllm(cp_settings, tmp_path):
    """A fake vLLM serving `fake-model` behind the real proxy; the relay has vLLM's key."""
    (tmp_path / "proxy-root" / "adapters").mkdir(parents=True)
    cp_settings.SYNTHTUNE_VLLM_TOKEN = VLLM_KEY
    relay.ROUTES.clear()
    with FakeOpenAI() as fake, InProcessProxy(tmp_path / "proxy-root", vllm_url=fake.base_url) as proxy:
        cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = proxy.address
        yield fake
    relay.ROUTES.clear()


def test_vllm_gets_its_key_never_the_callers_and_the_key_is_never_logged(sdk, fake_vllm, token, caplog):
    reply = sdk.chat.completions.create(model="fake-model", messages=HELLO, extra_headers={"X-Request-Id": "req-42"})
    assert reply.choices[0].message.content.startswith("Answer to:")
    [sent] = fake_vllm.chat_requests()
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert headers["authorization"] == f"Bearer {VLLM_KEY}" and token not in str(sent.headers)
    assert headers["x-request-id"] == "req-42"
    assert sent.body == {"model": "fake-model", "messages": HELLO}  # the body as sent

    fake_vllm.script(Status(401, message="Unauthorized"))  # vLLM refusing our key is not the caller's 401
    with pytest.raises(openai.InternalServerError) as error:
        sdk.chat.completions.create(model="fake-model", messages=HELLO)
    assert error.value.status_code == 503 and "SYNTHTUNE_VLLM_TOKEN" in error.value.message
    assert VLLM_KEY not in caplog.text


def test_bad_bodies_unknown_models_and_bad_tokens_get_openais_errors(sdk, fake_vllm, live_server):
    with pytest.raises(openai.NotFoundError) as error:
        sdk.chat.completions.create(model="no-such-model", messages=HELLO)
    assert error.value.code == "model_not_found" and "'no-such-model'" in error.value.message
    with pytest.raises(openai.NotFoundError) as error:
        sdk.completions.create(model="ft-v1:ckpt-step-10", prompt="x")
    assert "exported checkpoint" in error.value.message
    with pytest.raises(openai.BadRequestError) as error:
        sdk.chat.completions.create(model="", messages=HELLO)
    assert error.value.body["param"] == "model"

    with sdk_client(live_server, "not-a-real-token") as wrong, pytest.raises(openai.AuthenticationError) as error:
        wrong.chat.completions.create(model="fake-model", messages=HELLO)
    assert error.value.code == "invalid_api_key"
    with httpx.Client(base_url=f"{live_server.url}/v1") as raw:
        assert raw.post("/chat/completions", json={"model": "fake-model"}).status_code == 401
        key = {"Authorization": f"Bearer {sdk.api_key}"}
        for body in (b"{not json", b"[1, 2]"):
            reply = raw.post("/chat/completions", content=body, headers={**key, "Content-Type": "application/json"})
            assert reply.status_code == 400 and reply.json()["error"]["type"] == "invalid_request_error"
    assert fake_vllm.chat_requests() == []  # none of these reached vLLM


def test_a_vllm_or_proxy_that_is_down_is_a_503_that_says_which(sdk, cp_settings, tmp_path):
    (tmp_path / "adapters").mkdir()
    relay.ROUTES.clear()
    with ExitStack() as vllm:
        # In a process of its own, so that stopping it drops the relay's kept-alive connection too.
        url = vllm.enter_context(fake_openai_process(latency_s=0.0))
        with InProcessProxy(tmp_path, vllm_url=url) as proxy:
            cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = proxy.address
            sdk.chat.completions.create(model="fake-model", messages=HELLO)  # the table knows the target now
            vllm.close()  # vLLM goes down
            for _ in range(2):  # from the table, then from a listing that says it is unreachable
                with pytest.raises(openai.InternalServerError) as error:
                    sdk.chat.completions.create(model="fake-model", messages=HELLO)
                assert error.value.status_code == 503 and "unreachable" in error.value.message
                assert f"vLLM at {url.removesuffix('/v1')}" in error.value.message

    cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = f"127.0.0.1:{free_port()}"
    with pytest.raises(openai.APIStatusError) as error:
        sdk.completions.create(model="fake-model", prompt="x")
    assert error.value.status_code == 503 and "serving proxy" in error.value.message


def test_a_stream_is_passed_on_as_it_is_generated_and_stopped_when_the_reader_goes(sdk, cp_settings, tmp_path):
    (tmp_path / "adapters").mkdir()
    relay.ROUTES.clear()
    with PacedStream() as paced, InProcessProxy(tmp_path, vllm_url=paced.url) as proxy:
        cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = proxy.address
        started, arrivals, text = time.perf_counter(), [], ""
        for chunk in sdk.chat.completions.create(model="slow-model", messages=HELLO, stream=True):
            arrivals.append(time.perf_counter() - started)
            text += chunk.choices[0].delta.content
        assert text == paced.text()
        # Buffered, every piece would come at the end (1.5 s); relayed, each comes as it is sent.
        assert arrivals[0] < 0.5 * paced.stream_s, arrivals
        assert arrivals[-1] - arrivals[0] > 0.6 * (paced.stream_s - paced.gap_s), arrivals

        with sdk.chat.completions.create(model="slow-model", messages=HELLO, stream=True) as stream:
            next(iter(stream))  # then the reader leaves
        assert paced.aborted.wait(paced.stream_s + 2)  # and the relay hung up on vLLM, which stops
    relay.ROUTES.clear()
