"""Deployment services against the real proxy and vLLM: reconciliation (lost, restored, adopted),
and its guards against overwriting a load or unload that lands while it asks vLLM."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from control_plane.core.errors import Unavailable
from control_plane.deployments import proxy as proxy_module
from control_plane.deployments import services
from control_plane.deployments.models import Deployment
from synthtune.grpc_client import open_channel
from synthtune.serving.v1 import serving_pb2 as spb
from synthtune.serving.v1.serving_pb2_grpc import ServingProxyServiceStub
from tests.control_plane.deployments.conftest import use_proxy
from tests.control_plane.deployments.factories import DeploymentFactory
from tests.support.procs import TEST_GRPC_TOKEN, free_port

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_nothing_recorded_means_nothing_to_ask(cp_settings):
    # The proxy is down (proxy_down), yet a reconcile with no deployments succeeds: no call at all.
    report = services.deployment_reconcile()
    assert report.targets == [] and report.checked_at is None
    with pytest.raises(Unavailable) as error:
        services.deployment_reconcile(include_default_targets=True)
    assert cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR in error.value.message


def test_a_load_and_a_second_load_share_one_row(proxy, adapter, user, vllm_server):
    first = services.deployment_load(adapter_name=adapter.name, owner=user)
    second = services.deployment_load(adapter_name=adapter.name, owner=None)
    assert [d.pk for d in first.deployments] == [d.pk for d in second.deployments]
    assert second.replicas[0].already_loaded and Deployment.objects.get().owner == user


def test_a_served_adapter_without_a_record_is_adopted(proxy, adapter, vllm_server):
    # Loaded behind the control plane's back (or its answer never got written).
    channel = open_channel(proxy.address, token=TEST_GRPC_TOKEN)
    try:
        stub = ServingProxyServiceStub(channel)
        stub.LoadAdapter(spb.LoadAdapterRequest(adapter_name=adapter.name), timeout=120)
    finally:
        channel.close()
    assert services.deployment_reconcile().adopted == []  # no rows, no default targets: not asked
    report = services.deployment_reconcile(include_default_targets=True)
    [row] = Deployment.objects.all()
    assert report.adopted == [row.pk] and row.state == "loaded" and row.owner is None
    assert row.target == vllm_server.url and row.served_name == adapter.name
    assert services.deployment_reconcile(include_default_targets=True).adopted == []  # once


def test_a_lost_deployment_that_vllm_serves_again_is_restored(proxy, adapter, vllm_server):
    [loaded] = services.deployment_load(adapter_name=adapter.name, owner=None).deployments
    Deployment.objects.filter(pk=loaded.pk).update(
        state="lost", error="vLLM was unreachable", updated_at=timezone.now() - timedelta(seconds=5)
    )
    report = services.deployment_reconcile()
    loaded.refresh_from_db()
    assert report.restored == [loaded.pk] and loaded.state == "loaded" and loaded.error == ""


def test_an_unreachable_vllm_makes_its_deployments_lost_naming_it(cp_settings, proxies, adapter):
    dead = f"http://127.0.0.1:{free_port()}"
    use_proxy(cp_settings, proxies, dead)
    row = DeploymentFactory(adapter=adapter, target=dead, served_name=adapter.name)
    Deployment.objects.filter(pk=row.pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    assert services.deployment_reconcile().lost == [row.pk]
    row.refresh_from_db()
    assert row.state == "lost" and dead in row.error and "unreachable" in row.error and row.checked_at


def test_reconcile_leaves_rows_that_changed_while_it_asked(proxy, adapter, vllm_server):
    """A listing taken before a load (or an unload) landed is stale for that row."""
    asked_at = timezone.now()
    [row] = services.deployment_load(adapter_name=adapter.name, owner=None).deployments
    before_load = proxy_module.TargetModels(target=vllm_server.url, reachable=True, error="", models=[])
    services._apply_listing(before_load, asked_at=asked_at, report=services.ReconcileReport())
    row.refresh_from_db()
    assert row.state == "loaded"  # not marked lost on news older than the load

    listing = services.deployment_reconcile().targets[0]  # vLLM serves it now
    asked_at = timezone.now()
    services.deployment_unload(deployment=row)
    report = services.ReconcileReport()
    services._apply_listing(listing, asked_at=asked_at - timedelta(seconds=1), report=report)
    assert report.adopted == []  # the listing predates the unload: not adopted back
    assert list(Deployment.objects.values_list("state", flat=True)) == ["unloaded"]


def test_a_new_load_after_a_loss_keeps_the_lost_row_as_history(proxy, adapter, vllm_server):
    lost = DeploymentFactory(adapter=adapter, target=vllm_server.url, served_name=adapter.name, state="lost")
    [live] = services.deployment_load(adapter_name=adapter.name, owner=None).deployments
    assert live.pk != lost.pk
    services.deployment_reconcile()
    assert dict(Deployment.objects.values_list("pk", "state")) == {lost.pk: "lost", live.pk: "loaded"}
