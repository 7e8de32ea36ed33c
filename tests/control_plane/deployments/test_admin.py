"""Admin for serving: Load / Unload actions on adapters (the same services as the API), the
deployments list reconciled with vLLM, and the Compare page (one prompt side by side, and the
batch form's no-JS path). Against the real proxy and vLLM."""

from __future__ import annotations

import re

import pytest

from control_plane.deployments.models import Comparison, Deployment
from tests.control_plane.deployments.conftest import unload_everything
from tests.control_plane.deployments.factories import DeploymentFactory
from tests.control_plane.runs.factories import AdapterFactory

pytestmark = pytest.mark.django_db

ADAPTERS = "/admin/runs/adapter/"
DEPLOYMENTS = "/admin/deployments/deployment/"
COMPARE = "/admin/deployments/deployment/compare/"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def _messages(page: str) -> list[str]:
    return re.findall(r'<li class="(?:success|error|warning|info)">(.*?)</li>', page, re.S)


@pytest.mark.parametrize("url", [COMPARE, DEPLOYMENTS, "/admin/deployments/comparison/"])
def test_anonymous_and_non_staff_users_are_sent_to_the_login_page(client, user, url):
    assert client.get(url)["Location"].startswith("/admin/login/")
    client.force_login(user)
    assert client.get(url)["Location"].startswith("/admin/login/")


def test_the_adapter_list_offers_load_unload_and_compare(admin_client):
    adapter = AdapterFactory()
    page = admin_client.get(ADAPTERS).content.decode()
    assert 'value="load_adapters"' in page and 'value="unload_adapters"' in page
    assert f'href="{COMPARE}?adapter={adapter.name}"' in page
    assert not _messages(page)  # nothing recorded as loaded: nothing to check

    DeploymentFactory(adapter=adapter)  # recorded as loaded, and the proxy is down
    page = admin_client.get(ADAPTERS).content.decode()
    assert "loaded on http://127.0.0.1:9" in page  # as last seen...
    assert any("Could not check deployments" in m for m in _messages(page))  # ...and said so


def test_the_proxy_down_is_said_and_nothing_is_written(admin_client):
    adapter = AdapterFactory()
    page = admin_client.post(
        ADAPTERS, {"action": "load_adapters", "_selected_action": [adapter.pk]}, follow=True
    ).content.decode()
    assert any(adapter.name in m.lower() and "unavailable" in m for m in _messages(page)), _messages(page)
    assert not Deployment.objects.exists()


@pytest.mark.slow
def test_load_and_unload_from_the_adapter_list(admin_client, proxy, adapter, vllm_server):
    page = admin_client.post(
        ADAPTERS, {"action": "load_adapters", "_selected_action": [adapter.pk]}, follow=True
    ).content.decode()
    assert any(f"loaded as {adapter.name} on {vllm_server.url}" in m for m in _messages(page)), _messages(
        page
    )
    [deployment] = Deployment.objects.all()
    assert deployment.state == "loaded" and deployment.owner.is_staff
    assert f"loaded on {vllm_server.url}" in admin_client.get(ADAPTERS).content.decode()

    page = admin_client.post(
        ADAPTERS, {"action": "unload_adapters", "_selected_action": [adapter.pk]}, follow=True
    ).content.decode()
    assert any(f"unloaded from {vllm_server.url}" in m for m in _messages(page)), _messages(page)
    deployment.refresh_from_db()
    assert deployment.state == "unloaded"


@pytest.mark.slow
def test_a_failed_load_action_says_why_and_writes_nothing(admin_client, proxy, rank16):
    adapter = rank16.record()
    page = admin_client.post(
        ADAPTERS, {"action": "load_adapters", "_selected_action": [adapter.pk]}, follow=True
    ).content.decode()
    assert any("rank 16" in m for m in _messages(page)), _messages(page)
    assert not Deployment.objects.exists()


@pytest.mark.slow
def test_the_deployment_list_shows_what_vllm_really_serves(admin_client, proxy, adapter, vllm_server):
    admin_client.post(ADAPTERS, {"action": "load_adapters", "_selected_action": [adapter.pk]})
    assert 'data-state="loaded"' in admin_client.get(DEPLOYMENTS).content.decode()
    unload_everything(proxy.address, vllm_server.url)  # as a vLLM restart would
    page = admin_client.get(DEPLOYMENTS).content.decode()
    assert 'data-state="lost"' in page and "does not serve" in page
    assert Deployment.objects.get().state == "lost"


@pytest.mark.slow
def test_the_unload_action_on_deployments(admin_client, proxy, adapter):
    admin_client.post(ADAPTERS, {"action": "load_adapters", "_selected_action": [adapter.pk]})
    already = DeploymentFactory(adapter=adapter, state="unloaded", target="http://127.0.0.1:9")
    live = Deployment.objects.get(state="loaded")
    page = admin_client.post(
        DEPLOYMENTS, {"action": "unload_deployments", "_selected_action": [live.pk, already.pk]}, follow=True
    ).content.decode()
    messages = _messages(page)
    assert any("Unloaded 1 deployment" in m for m in messages) and any(
        "nothing to unload" in m for m in messages
    )
    assert Deployment.objects.get(pk=live.pk).state == "unloaded"


@pytest.mark.slow
def test_the_compare_page_shows_both_outputs_side_by_side(admin_client, proxy, adapter):
    page = admin_client.get(f"{COMPARE}?adapter={adapter.name}").content.decode()
    assert f'<option value="{adapter.name}" selected>' in page and 'id="compare-form"' in page
    assert "No adapter is loaded" in page

    # Not loaded yet: the form says so, nothing is recorded.
    form = {
        "one-adapter": adapter.name,
        "one-prompt": "Say something about the sea, number 7.",
        "_compare": "1",
    }
    page = admin_client.post(COMPARE, form).content.decode()
    assert "is not loaded" in page and not Comparison.objects.exists()

    admin_client.post(ADAPTERS, {"action": "load_adapters", "_selected_action": [adapter.pk]})
    page = admin_client.post(COMPARE, {**form, "one-max_tokens": "24"}).content.decode()
    base = re.search(r'id="compare-base-text">(.*?)</pre>', page, re.S)
    tuned = re.search(r'id="compare-adapter-text">(.*?)</pre>', page, re.S)
    assert base and tuned and base.group(1) != tuned.group(1)
    comparison = Comparison.objects.get()
    assert comparison.request["sampling"] == {"max_tokens": 24}
    assert f"as <code>{adapter.name}</code>" in page


@pytest.mark.slow
def test_the_batch_form_without_js_shows_the_table_and_summary(admin_client, proxy, adapter):
    admin_client.post(ADAPTERS, {"action": "load_adapters", "_selected_action": [adapter.pk]})
    form = {"batch-adapter": adapter.name, "batch-limit": "2", "batch-max_tokens": "12", "_batch": "1"}
    page = admin_client.post(COMPARE, form).content.decode()
    rows = re.search(r'<table id="batch-rows".*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    assert rows.count("<tr>") == 2
    assert 'data-side="base"' in page and 'data-side="adapter"' in page
    assert Comparison.objects.get().kind == "batch"
