"""Reads: deployments (filtered, by id), what each vLLM serves, comparisons."""

from __future__ import annotations

from django.db.models import QuerySet

from control_plane.core.errors import NotFound
from control_plane.deployments import proxy
from control_plane.deployments.models import Comparison, Deployment


def deployment_list(
    *, state: str | None = None, adapter: str | None = None, target: str | None = None
) -> QuerySet[Deployment]:
    deployments = Deployment.objects.select_related("adapter", "owner")
    if state:
        deployments = deployments.filter(state=state)
    if adapter:
        deployments = deployments.filter(adapter__name=adapter)
    if target:
        deployments = deployments.filter(target=proxy.normalize_target(target))
    return deployments


def deployment_get(*, deployment_id: int) -> Deployment:
    try:
        return Deployment.objects.select_related("adapter", "owner").get(pk=deployment_id)
    except Deployment.DoesNotExist:
        raise NotFound(f"No deployment {deployment_id}.", field="deployment_id") from None


def served_models(*, targets: list[str], token: str = "") -> list[proxy.TargetModels]:
    """What each vLLM serves (base model and adapters), per target; empty: the proxy's targets."""
    return proxy.list_served_models(targets=[proxy.normalize_target(t) for t in targets], token=token)


def served_base_models(*, timeout_s: float | None = None) -> list[str]:
    """The base models the proxy's vLLM targets serve now (unreachable targets left out), in
    target order, once each. Raises the proxy's errors (Unavailable when it is down)."""
    names: list[str] = []
    for listing in proxy.list_served_models(targets=[], timeout_s=timeout_s):
        for model in listing.models:
            if not model.parent and model.id not in names:  # an adapter names its base as parent
                names.append(model.id)
    return names


def comparison_get(*, comparison_id: int) -> Comparison:
    try:
        return Comparison.objects.select_related("adapter", "owner").get(pk=comparison_id)
    except Comparison.DoesNotExist:
        raise NotFound(f"No comparison {comparison_id}.", field="comparison_id") from None


def comparison_list(*, adapter: str | None = None, kind: str | None = None) -> QuerySet[Comparison]:
    comparisons = Comparison.objects.select_related("adapter", "owner")
    if adapter:
        comparisons = comparisons.filter(adapter__name=adapter)
    if kind:
        comparisons = comparisons.filter(kind=kind)
    return comparisons
