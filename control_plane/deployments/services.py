"""Writes: load and unload adapters through the serving proxy, keep deployments true to what
vLLM serves, and run (and record) base-vs-adapter comparisons.

Nothing half-written:
- a load writes its rows only after the proxy has answered, in one transaction. A load that
  fails outright (bad adapter, rank, base model, runtime flag off, vLLM or proxy down) writes
  nothing; the caller gets the error. A load that worked on some replicas and not others
  records `loaded` rows for those that did and `failed` rows (with the error) for the rest;
- an unload changes the row only once vLLM has dropped the adapter (or is found not to
  have it: then the row becomes `lost`);
- reconciliation only changes rows that existed before it asked vLLM, so a load or unload
  that lands meanwhile is never overwritten with stale news.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from control_plane.core.errors import InvalidArgument, NotFound, SynthtuneError, UpstreamError
from control_plane.datasets import storage
from control_plane.datasets.models import Dataset
from control_plane.deployments import proxy
from control_plane.deployments.models import Comparison, Deployment
from control_plane.runs.models import Adapter, Run
from synthtune.paths import validate_name

logger = logging.getLogger(__name__)

_EXPORT_TMP_PREFIX = ".export-"  # the trainer's temp folder while it writes an export
_VERSIONED = re.compile(r"^(?P<stem>.+)-v\d+$")


# --- adapters that can be served -----------------------------------------------------------


def _unfinished_run_for(name: str) -> Run | None:
    """The unfinished run that will export `name` (<stem>-v<N>), if any."""
    match = _VERSIONED.match(name)
    if not match:
        return None
    for run in Run.objects.exclude(state__in=Run.TERMINAL_STATES).order_by("-created_at"):
        # The trainer's stem: the requested adapter_name, else "<model name>-lora".
        stem = run.adapter_name or f"{run.base_model.rsplit('/', 1)[-1]}-lora"
        if stem == match["stem"]:
            return run
    return None


def adapter_for_serving(*, name: str) -> Adapter:
    """The recorded adapter `name`, checked as a plain folder name under adapters/.

    Raises InvalidArgument (400) for '..', absolute or hidden names, and NotFound (404)
    for an unknown adapter, saying so when its export has not finished yet."""
    if name.startswith(_EXPORT_TMP_PREFIX):
        raise InvalidArgument(
            f"{name!r} is an export still being written (or left by a crash), not an adapter; "
            "load the adapter by its final name once its run has succeeded.",
            field="adapter",
        )
    validate_name(name, field="adapter")
    try:
        return Adapter.objects.get(name=name)
    except Adapter.DoesNotExist:
        pass
    run = _unfinished_run_for(name)
    if run is not None:
        raise NotFound(
            f"Adapter {name!r} does not exist yet: its export has not finished (run {run.run_id} is "
            f"{run.state}). Load it once the run has succeeded.",
            extra={"field": "adapter", "run_id": run.run_id, "run_state": run.state},
        )
    if storage.absolute(f"adapters/{name}/manifest.json").is_file():
        raise NotFound(
            f"Adapter {name!r} is exported but not recorded yet (the worker records it from the run's "
            "events); try again in a moment.",
            field="adapter",
        )
    raise NotFound(f"No adapter named {name!r}.", field="adapter")


# --- load and unload -------------------------------------------------------------------------


@dataclass
class LoadOutcome:
    served_name: str
    deployments: list[Deployment]
    replicas: list[proxy.ReplicaResult]

    @property
    def loaded(self) -> list[Deployment]:
        return [d for d in self.deployments if d.state == Deployment.State.LOADED]


def _live(target: str, served_name: str):
    return Deployment.objects.select_for_update().filter(
        target=target, served_name=served_name, state__in=Deployment.ACTIVE_STATES
    )


def deployment_load(
    *, adapter_name: str, targets: list[str] | None = None, token: str = "", owner: AbstractBaseUser | None
) -> LoadOutcome:
    """Load adapter `adapter_name` into vLLM through the proxy: into `targets` (vLLM base URLs),
    or the proxy's configured replicas when empty. `token` (vLLM's) is passed on, never stored.

    Loading what is already loaded is a success that keeps the existing row. Raises the first
    replica's error when no replica loaded it (FAILED_PRECONDITION for rank, base model or the
    runtime flag; UNAVAILABLE naming the URL of a vLLM that is down), writing nothing."""
    adapter = adapter_for_serving(name=adapter_name)
    wanted = [proxy.normalize_target(t) for t in targets or []]
    result = proxy.load_adapter(adapter_name=adapter.name, targets=wanted, token=token)
    if not result.replicas:
        raise UpstreamError("INTERNAL", "The serving proxy reported no replica for the load.")
    if not any(replica.ok for replica in result.replicas):
        error = result.replicas[0].error()
        if len(result.replicas) > 1:
            error.extra["replicas"] = [replica.as_dict() for replica in result.replicas]
        raise error
    now = timezone.now()
    deployments = []
    with transaction.atomic():
        for replica in result.replicas:
            served_name = replica.served_name or result.served_name
            if not replica.ok:
                deployments.append(
                    Deployment.objects.create(
                        adapter=adapter,
                        target=replica.target,
                        served_name=served_name,
                        state=Deployment.State.FAILED,
                        error=replica.error().message,
                        owner=owner,
                        checked_at=now,
                    )
                )
                continue
            existing = _live(replica.target, served_name).first()
            if existing is not None:  # already loaded (a retry, or adopted by reconciliation)
                existing.state, existing.error, existing.checked_at = Deployment.State.LOADED, "", now
                existing.owner = existing.owner or owner
                existing.loaded_at = existing.loaded_at or now
                existing.save()
                deployments.append(existing)
                continue
            deployments.append(
                Deployment.objects.create(
                    adapter=adapter,
                    target=replica.target,
                    served_name=served_name,
                    state=Deployment.State.LOADED,
                    owner=owner,
                    loaded_at=now,
                    checked_at=now,
                )
            )
    logger.info(
        "adapter loaded",
        extra={
            "adapter": adapter.name,
            "served_name": result.served_name,
            "targets": [r.target for r in result.replicas if r.ok],
            "failed_targets": [r.target for r in result.replicas if not r.ok],
        },
    )
    return LoadOutcome(served_name=result.served_name, deployments=deployments, replicas=result.replicas)


def _mark_lost(deployment: Deployment, reason: str) -> None:
    with transaction.atomic():
        row = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if row.state == Deployment.State.LOADED:
            row.state, row.error, row.checked_at = Deployment.State.LOST, reason, timezone.now()
            row.save()
    deployment.refresh_from_db()


def deployment_unload(*, deployment: Deployment, token: str = "") -> Deployment:
    """Unload one deployment from its vLLM. NotFound (404) when it isn't loaded: recorded as
    not loaded, or vLLM doesn't serve it any more (then the row becomes lost)."""
    if deployment.state != Deployment.State.LOADED:
        raise NotFound(
            f"Deployment {deployment.pk} ({deployment.adapter.name} on {deployment.target}) is "
            f"{deployment.state}, not loaded: there is nothing to unload.",
            extra={"deployment": deployment.pk, "state": deployment.state},
        )
    gone = (
        f"vLLM at {deployment.target} does not serve {deployment.served_name!r} "
        "(restarted, or unloaded elsewhere): there was nothing to unload."
    )
    try:
        replicas = proxy.unload_adapter(
            served_name=deployment.served_name, targets=[deployment.target], token=token
        )
    except NotFound:
        _mark_lost(deployment, gone)
        raise NotFound(gone, extra={"deployment": deployment.pk, "state": deployment.state}) from None
    replica = next((r for r in replicas if r.target == deployment.target), replicas[0] if replicas else None)
    if replica is None:
        raise UpstreamError("INTERNAL", "The serving proxy reported no replica for the unload.")
    if not replica.ok:
        if replica.code == "NOT_FOUND":
            _mark_lost(deployment, gone)
            raise NotFound(gone, extra={"deployment": deployment.pk, "state": deployment.state})
        raise replica.error()
    with transaction.atomic():
        row = Deployment.objects.select_for_update().get(pk=deployment.pk)
        row.state, row.error = Deployment.State.UNLOADED, ""
        row.unloaded_at = row.checked_at = timezone.now()
        row.save()
    logger.info(
        "adapter unloaded",
        extra={"adapter": row.adapter.name, "served_name": row.served_name, "target": row.target},
    )
    deployment.refresh_from_db()
    return deployment


def adapter_unload(*, adapter: Adapter, token: str = "") -> list[Deployment]:
    """Unload every loaded deployment of `adapter` (after reconciling, so what vLLM already
    lost isn't asked for). NotFound when none is loaded. Errors other than "not loaded"
    are raised after the others were tried."""
    try:
        deployment_reconcile()
    except SynthtuneError:
        pass  # the unload itself will say what is wrong
    loaded = list(adapter.deployments.filter(state=Deployment.State.LOADED).order_by("id"))
    if not loaded:
        raise NotFound(f"Adapter {adapter.name!r} is not loaded on any vLLM.", field="adapter")
    unloaded, errors = [], []
    for deployment in loaded:
        try:
            unloaded.append(deployment_unload(deployment=deployment, token=token))
        except NotFound:
            continue
        except SynthtuneError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    if not unloaded:
        raise NotFound(
            f"Adapter {adapter.name!r} was recorded as loaded, but no vLLM serves it any more "
            "(restarted?); its deployments are now marked lost.",
            field="adapter",
        )
    return unloaded


# --- reconciliation ---------------------------------------------------------------------


@dataclass
class ReconcileReport:
    checked_at: datetime | None = None
    targets: list[proxy.TargetModels] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    restored: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)


def _apply_listing(target: proxy.TargetModels, *, asked_at: datetime, report: ReconcileReport) -> None:
    served = {model.id: model for model in target.models} if target.reachable else {}
    now = timezone.now()
    with transaction.atomic():
        rows = Deployment.objects.select_for_update().filter(
            target=target.target, state__in=Deployment.RECONCILED_STATES, updated_at__lt=asked_at
        )
        checked = []
        for row in rows:
            checked.append(row.pk)
            if row.served_name in served:
                if row.state == Deployment.State.LOST and not _live(row.target, row.served_name).exists():
                    row.state, row.error, row.checked_at = Deployment.State.LOADED, "", now
                    row.save()
                    report.restored.append(row.pk)
            elif row.state == Deployment.State.LOADED:
                row.state, row.checked_at = Deployment.State.LOST, now
                row.error = (
                    f"vLLM at {target.target} does not serve {row.served_name!r} any more "
                    "(restarted? runtime-loaded adapters don't survive a restart); load it again."
                    if target.reachable
                    else f"vLLM at {target.target} is unreachable: {target.error or 'no answer'}"
                )
                row.save()
                report.lost.append(row.pk)
        # Only the check time for the rest: update() leaves updated_at alone.
        Deployment.objects.filter(pk__in=checked).update(checked_at=now)
        # Served by vLLM but not recorded (loaded by a request whose answer never got written,
        # or before this DB): adopt it when it is one of our adapters.
        names = {model.adapter_name for model in served.values() if model.adapter_name}
        adapters = {a.name: a for a in Adapter.objects.filter(name__in=names)}
        for model in served.values():
            adapter = adapters.get(model.adapter_name)
            if adapter is None:
                continue
            recent = Deployment.objects.filter(target=target.target, served_name=model.id)
            if recent.filter(state__in=Deployment.ACTIVE_STATES).exists():
                continue
            if recent.filter(updated_at__gte=asked_at).exists():
                continue  # unloaded (or changed) while we were asking: the listing is stale for it
            try:
                with transaction.atomic():
                    row = Deployment.objects.create(
                        adapter=adapter,
                        target=target.target,
                        served_name=model.id,
                        state=Deployment.State.LOADED,
                        checked_at=now,
                    )
            except IntegrityError:
                continue  # a load recorded it meanwhile
            report.adopted.append(row.pk)


def deployment_reconcile(*, include_default_targets: bool = False, token: str = "") -> ReconcileReport:
    """Check loaded (and lost) deployments against each vLLM's served models: what vLLM no longer
    serves becomes lost (with the reason), what it serves again becomes loaded, and served
    adapters of ours with no record are adopted. Without recorded deployments (and
    `include_default_targets` off) nothing is asked. Raises Unavailable if the proxy is down."""
    report = ReconcileReport()
    targets = sorted(
        set(
            Deployment.objects.filter(state__in=Deployment.RECONCILED_STATES)
            .values_list("target", flat=True)
            .distinct()
        )
    )
    if not targets and not include_default_targets:
        return report
    asked_at = timezone.now()
    listings: dict[str, proxy.TargetModels] = {}
    if targets:
        listings.update({t.target: t for t in proxy.list_served_models(targets=targets, token=token)})
    if include_default_targets:
        for listing in proxy.list_served_models(targets=[], token=token):
            listings.setdefault(listing.target, listing)
    for listing in listings.values():
        _apply_listing(listing, asked_at=asked_at, report=report)
    report.checked_at = timezone.now()
    report.targets = list(listings.values())
    if report.lost or report.restored or report.adopted:
        logger.info(
            "deployments reconciled",
            extra={"lost": report.lost, "restored": report.restored, "adopted": report.adopted},
        )
    return report


# --- comparisons ------------------------------------------------------------------------------


def _serving_choice(adapter: Adapter, *, served_name: str, target: str) -> tuple[str, str]:
    """(served name, target) to compare with: as given, else the newest loaded deployment of the
    adapter (on `target` if given); else both empty and the proxy picks (or says it isn't loaded)."""
    target = proxy.normalize_target(target)
    if served_name:
        return served_name, target
    loaded = adapter.deployments.filter(state=Deployment.State.LOADED)
    if target:
        loaded = loaded.filter(target=target)
    newest = loaded.order_by("-loaded_at", "-id").first()
    return (newest.served_name, newest.target) if newest else ("", target)


def _clean_sampling(sampling: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (sampling or {}).items() if k in proxy.SAMPLING_FIELDS and v is not None}


def comparison_run_one(
    *,
    owner: AbstractBaseUser | None,
    adapter_name: str,
    prompt: str,
    sampling: dict[str, Any] | None = None,
    system_prompt: str = "",
    served_name: str = "",
    target: str = "",
    token: str = "",
) -> Comparison:
    """Base and adapter outputs for one prompt, side by side (identical sampling; greedy by
    default), recorded as a Comparison."""
    adapter = adapter_for_serving(name=adapter_name)
    served_name, target = _serving_choice(adapter, served_name=served_name, target=target)
    sampling = _clean_sampling(sampling)
    result = proxy.compare_one(
        prompt=prompt,
        adapter_name=adapter.name,
        served_name=served_name,
        target=target,
        token=token,
        sampling=sampling,
        system_prompt=system_prompt,
    )
    return Comparison.objects.create(
        kind=Comparison.Kind.ONE,
        adapter=adapter,
        served_name=result.adapter.model or served_name,
        target=target,
        prompt_format=result.prompt_format,
        request={"prompt": prompt, "system_prompt": system_prompt, "sampling": sampling},
        result={"base": asdict(result.base), "adapter": asdict(result.adapter)},
        owner=owner,
    )


def _dataset_path(name: str) -> str:
    try:
        dataset = Dataset.objects.get(name=name)
    except Dataset.DoesNotExist:
        raise NotFound(f"No dataset named {name!r}.", field="dataset") from None
    if dataset.status != Dataset.Status.READY:
        raise InvalidArgument(
            f"Dataset {name!r} is {dataset.status}; only ready datasets can be compared on.", field="dataset"
        )
    return dataset.path


@dataclass
class BatchComparison:
    """A batch comparison under way: iterate `events()` for ("row", row) ... ("summary", summary),
    then ("comparison", {"id": ...}) once it is recorded."""

    adapter: Adapter
    served_name: str
    target: str
    dataset: str
    request: dict[str, Any]
    owner: AbstractBaseUser | None
    _events: Iterator[tuple[str, dict[str, Any]]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    comparison: Comparison | None = None

    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for kind, payload in self._events:
            if kind == "row":
                self.rows.append(payload)
            elif kind == "summary":
                self.summary = payload
            yield kind, payload
        self.comparison = Comparison.objects.create(
            kind=Comparison.Kind.BATCH,
            adapter=self.adapter,
            served_name=self.served_name,
            target=self.target,
            request=self.request,
            result={"rows": self.rows},
            summary=self.summary,
            owner=self.owner,
        )
        yield "comparison", {"id": self.comparison.pk}


def comparison_start_batch(
    *,
    owner: AbstractBaseUser | None,
    adapter_name: str,
    dataset: str = "",
    limit: int,
    sampling: dict[str, Any] | None = None,
    served_name: str = "",
    target: str = "",
    token: str = "",
    judge: dict[str, Any] | None = None,
) -> BatchComparison:
    """Check the request (now: errors before any row) and return the batch to iterate.
    `dataset`: a ready dataset's name; empty: the adapter's held-out rows (its eval split).
    `judge`: an LLM judge (base_url, model, token, mode, rubric, concurrency, ...); its token is
    passed on and kept out of the recorded request."""
    adapter = adapter_for_serving(name=adapter_name)
    dataset_path = _dataset_path(dataset) if dataset else ""
    served_name, target = _serving_choice(adapter, served_name=served_name, target=target)
    sampling = _clean_sampling(sampling)
    judge = {
        k: v for k, v in (judge or {}).items() if k in proxy.JUDGE_FIELDS and v not in (None, "")
    } or None
    events = proxy.compare_batch(
        adapter_name=adapter.name,
        served_name=served_name,
        dataset_path=dataset_path,
        limit=limit,
        target=target,
        token=token,
        sampling=sampling,
        judge=judge,
    )
    recorded = {"dataset": dataset, "limit": limit, "sampling": sampling}
    if judge:
        recorded["judge"] = {k: v for k, v in judge.items() if k != "token"}
    return BatchComparison(
        adapter=adapter,
        served_name=served_name,
        target=target,
        dataset=dataset,
        request=recorded,
        owner=owner,
        _events=events,
    )
