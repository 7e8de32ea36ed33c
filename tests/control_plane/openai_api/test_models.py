"""/v1/models through the official SDK: the base models vLLM serves and every adapter, each once;
retrieve (ids with '/'); unknown ids; the serving proxy down. The real serving proxy runs in this
process in front of a fake vLLM, so none of this waits for an engine (test_inference has the real one)."""

from __future__ import annotations

import json

import openai
import pytest

from control_plane.openai_api import relay
from tests.control_plane.runs.factories import AdapterFactory
from tests.serving_proxy_svc.conftest import InProcessProxy
from tests.support.fake_openai import FakeOpenAI
from tests.support.procs import free_port

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "org/base-model"  # a hub-style id: the route must take the '/'


@pytest.fixture
def vllm(cp_settings, tmp_path):
    """A fake vLLM serving BASE and one adapter loaded by hand, behind the real proxy."""
    cards = [
        {"id": BASE, "root": "/models/base"},
        {"id": "by-hand-v1", "root": "/elsewhere/by-hand-v1", "parent": BASE},
    ]
    relay.ROUTES.clear()
    (tmp_path / "proxy-root" / "adapters").mkdir(parents=True)
    with FakeOpenAI(models=cards) as fake, InProcessProxy(tmp_path / "proxy-root", vllm_url=fake.base_url) as proxy:
        cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = proxy.address
        yield fake
    relay.ROUTES.clear()


def test_models_are_the_served_base_models_and_every_adapter_once(sdk, vllm, user):
    recorded = AdapterFactory(name="support-v1", run=None)
    mine = AdapterFactory(name="support-v2", run__owner=user)
    listed = sdk.models.list()
    assert [m.id for m in listed.data] == [BASE, mine.name, recorded.name]  # newest adapter first
    base, first, second = listed.data
    assert (base.object, base.owned_by) == ("model", "vllm") and base.created > 0
    assert (first.owned_by, first.created) == (user.username, int(mine.created_at.timestamp()))
    assert second.owned_by == "synthtune"  # no run, no owner
    # An adapter vLLM serves that synthtune never recorded is not listed as a model of ours.
    assert "by-hand-v1" not in {m.id for m in listed.data}

    assert sdk.models.retrieve(BASE).model_dump(exclude_none=True) == base.model_dump(exclude_none=True)
    assert sdk.models.retrieve(mine.name).owned_by == user.username
    with pytest.raises(openai.NotFoundError) as error:
        sdk.models.retrieve("no-such-model")
    assert error.value.code == "model_not_found" and "'no-such-model'" in error.value.message
    assert error.value.body["param"] == "model"


def test_a_vllm_that_is_down_leaves_its_base_model_out(sdk, vllm):
    recorded = AdapterFactory(name="offline-v1", run=None)
    vllm.close()
    relay.ROUTES.clear()
    assert [m.id for m in sdk.models.list().data] == [recorded.name]  # the base is left out, not an error


def test_the_proxy_down_is_a_503_in_openais_shape(sdk, cp_settings, live_server):
    recorded = AdapterFactory(name="kept-v1", run=None)
    cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = f"127.0.0.1:{free_port()}"
    relay.ROUTES.clear()
    with pytest.raises(openai.InternalServerError) as error:
        sdk.models.list()
    assert error.value.status_code == 503 and "serving proxy" in error.value.message
    assert error.value.body["type"] == "server_error"
    with pytest.raises(openai.InternalServerError):
        sdk.models.retrieve(BASE)
    assert sdk.models.retrieve(recorded.name).id == recorded.name  # the DB alone answers for adapters


def test_the_schema_lists_the_models_and_inference_routes(api):
    schema = json.loads(api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    paths = schema["paths"]
    for path, method in (("/v1/models", "get"), ("/v1/models/{model}", "get"),
                         ("/v1/chat/completions", "post"), ("/v1/completions", "post")):  # fmt: skip
        operation = paths[path][method]
        assert operation["tags"] == ["OpenAI-compatible"], path
    chat = paths["/v1/chat/completions"]["post"]["responses"]
    assert set(chat["200"]["content"]) == {"application/json", "text/event-stream"}
    assert chat["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/OpenAIError")
