"""Reads: runs and adapters with filters, lookups that raise NotFound, events, the loss history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from control_plane.core.errors import NotFound
from control_plane.datasets import storage
from control_plane.runs.models import Adapter, Run, RunEvent
from control_plane.runs.params import DEFAULT_BASE_MODEL

MANIFEST = "manifest.json"


def run_list(
    *,
    state: str | None = None,
    base_model: str | None = None,
    dataset: str | None = None,
    owner: str | None = None,
) -> QuerySet[Run]:
    runs = Run.objects.select_related("owner", "adapter").prefetch_related("datasets", "eval_datasets")
    if state:
        runs = runs.filter(state=state)
    if base_model:
        runs = runs.filter(base_model=base_model)
    if dataset:
        runs = runs.filter(datasets__name=dataset)
    if owner:
        runs = runs.filter(owner__username=owner)
    return runs.distinct()


def run_active_list() -> QuerySet[Run]:
    """Runs not finished yet (validating, queued, running), oldest first: the trainer's order."""
    return (
        Run.objects.select_related("owner")
        .exclude(state__in=Run.TERMINAL_STATES)
        .order_by("created_at", "id")
    )


def run_base_model_suggestions(*, served: list[str], history: int = 200) -> list[tuple[str, str]]:
    """Base models to offer on the Fine-tune form, each with why, best first and without
    duplicates: those vLLM serves (`served`: their adapters can be loaded), those earlier runs
    here trained successfully (the newest of the last `history` runs first), then the default.
    Only a hint: the trainer decides what it can train."""
    suggestions: dict[str, str] = {name: "served by vLLM" for name in served if name}
    trained = (
        Run.objects.filter(state=Run.State.SUCCEEDED)
        .order_by("-created_at", "-id")
        .values_list("base_model", flat=True)[:history]
    )
    for name in trained:
        suggestions.setdefault(name, "trained here before")
    suggestions.setdefault(DEFAULT_BASE_MODEL, "the API's default")
    return list(suggestions.items())


def run_get(*, run_id: str) -> Run:
    try:
        return (
            Run.objects.select_related("owner", "adapter")
            .prefetch_related("datasets", "eval_datasets")
            .get(run_id=run_id)
        )
    except Run.DoesNotExist:
        raise NotFound(f"No run {run_id!r}.", field="run_id") from None


def run_pending_ids() -> list[str]:
    """Runs whose streams the worker still has to follow."""
    return list(Run.objects.exclude(state__in=Run.TERMINAL_STATES).values_list("run_id", flat=True))


def run_event_list(
    *, run: Run, after_seq: int = 0, limit: int | None = None, types: list[str] | None = None
) -> list[RunEvent]:
    events = run.events.filter(seq__gt=after_seq).order_by("seq")
    if types:
        events = events.filter(type__in=types)
    return list(events[:limit] if limit else events)


def run_event_list_newest_first(
    *, run: Run, before_seq: int | None = None, limit: int, types: list[str] | None = None
) -> tuple[list[RunEvent], bool]:
    """A page of the run's events, newest first, older than `before_seq`: (events, has_more)."""
    events = run.events.order_by("-seq")
    if before_seq is not None:
        events = events.filter(seq__lt=before_seq)
    if types:
        events = events.filter(type__in=types)
    page = list(events[: limit + 1])
    return page[:limit], len(page) > limit


def run_loss_history(*, run: Run, max_points: int = 2000) -> dict[str, list[list[float]]]:
    """The loss curve from the stored step and eval events: {"train": [[step, loss]...],
    "eval": [[step, eval_loss]...]}, in step order. A longer train series is thinned evenly
    to about `max_points` (its last point kept), which is all a page-wide chart can show."""
    history: dict[str, list[list[float]]] = {"train": [], "eval": []}
    for kind, payload in (
        run.events.filter(type__in=("step", "eval")).order_by("seq").values_list("type", "payload")
    ):
        if kind == "step":
            history["train"].append([payload["step"], payload["loss"]])
        else:
            history["eval"].append([payload["step"], payload["eval_loss"]])
    train = history["train"]
    if len(train) > max_points:
        stride = -(-len(train) // max_points)  # ceiling division
        history["train"] = train[::stride] + ([train[-1]] if (len(train) - 1) % stride else [])
    return history


# The eval metrics drawn beside the loss curve, all on a 0..1 scale (chrF is 0..100 in the events).
EVAL_SERIES = {"eval_mean_token_accuracy": 1.0, "eval_exact_match": 1.0, "eval_chrf": 100.0}


def run_eval_history(*, run: Run) -> dict[str, Any]:
    """The eval metrics chart's data from the stored eval events: {"series": {name: [[step, value
    in 0..1]...]} for token accuracy, exact match and chrF (those the run reported), "best":
    {"step", "metric", "value"} of the latest eval that was the best so far, or None}."""
    series: dict[str, list[list[float]]] = {name: [] for name in EVAL_SERIES}
    best = None
    for payload in run.events.filter(type="eval").order_by("seq").values_list("payload", flat=True):
        for name, scale in EVAL_SERIES.items():
            if isinstance(payload.get(name), (int, float)):
                series[name].append([payload["step"], payload[name] / scale])
        if payload.get("is_best"):
            metric = payload.get("metric") or "eval_loss"
            best = {"step": payload["step"], "metric": metric, "value": payload.get(metric)}
    return {"series": {name: points for name, points in series.items() if points}, "best": best}


def adapter_list(
    *, base_model: str | None = None, run: str | None = None, search: str | None = None
) -> QuerySet[Adapter]:
    adapters = Adapter.objects.select_related("run")
    if base_model:
        adapters = adapters.filter(base_model=base_model)
    if run:
        adapters = adapters.filter(run__run_id=run)
    if search:
        adapters = adapters.filter(name__icontains=search)
    return adapters


def adapter_get(*, name: str) -> Adapter:
    try:
        return Adapter.objects.select_related("run").get(name=name)
    except Adapter.DoesNotExist:
        raise NotFound(f"No adapter named {name!r}.", field="name") from None


def adapter_manifest_path(*, adapter: Adapter) -> Path:
    """manifest.json of the adapter's folder under the data root (the file as exported)."""
    path = storage.absolute(f"{adapter.path.rstrip('/')}/{MANIFEST}")
    if not path.is_file():
        raise NotFound(
            f"The manifest of adapter {adapter.name!r} ({adapter.path}/{MANIFEST}) is missing from the data root."
        )
    return path
