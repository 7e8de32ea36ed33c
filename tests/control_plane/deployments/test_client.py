"""synthtune.client's serving methods against a live control plane (real HTTP and SSE), the
real proxy and vLLM."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from synthtune.client import ApiError, Client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def http(live_server, user):
    with Client(live_server.url, token=Token.objects.create(user=user).key, timeout_s=120) as client:
        yield client


def test_load_compare_batch_and_unload_through_the_client(http, proxy, adapter, vllm_server):
    loaded = http.load_adapter(adapter.name)
    assert loaded["served_name"] == adapter.name and loaded["deployments"][0]["state"] == "loaded"
    [deployment] = http.deployments(adapter=adapter.name)
    assert http.deployment(deployment["id"])["reconcile"]["ok"]
    [target] = http.served_models(vllm_server.url)
    assert adapter.name in {m["id"] for m in target["models"]}

    compared = http.compare(adapter=adapter.name, prompt="Say something about a map, number 3.")
    assert compared["base"]["text"] != compared["adapter"]["text"]
    batch = http.compare_batch(adapter=adapter.name, limit=2, sampling={"max_tokens": 8})
    assert len(batch["rows"]) == 2 and batch["summary"]["rows"] == 2
    events = list(http.stream_compare_batch(adapter=adapter.name, limit=2, sampling={"max_tokens": 8}))
    assert [e.event for e in events] == ["row", "row", "summary", "comparison"]

    assert http.unload_adapter(adapter.name)["deployments"][0]["state"] == "unloaded"
    with pytest.raises(ApiError) as error:
        http.unload_deployment(deployment["id"])
    assert error.value.status == 404 and error.value.code == "NOT_FOUND"


def test_client_errors_carry_the_one_body(http, proxy, adapter):
    with pytest.raises(ApiError) as error:
        http.load_adapter("../escape")
    assert error.value.status == 400 and error.value.extra["field"] == "adapter"
    with pytest.raises(ApiError) as error:
        list(http.stream_compare_batch(adapter=adapter.name, limit=2))  # not loaded: before any row
    assert error.value.status == 404 and adapter.name in error.value.message
