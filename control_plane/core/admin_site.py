"""The admin site. Its home page is the pipeline, in the order a user follows it:
1 Generate, 2 Fine-tune, 3 Serve, 4 Compare. It shows what is running now, the latest item
of each step and the next action of each; the usual app list (datasets, runs, tokens, users...)
comes below it. The data comes from control_plane.core.selectors; this module only turns it
into links and labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse

from control_plane.core import selectors
from control_plane.core.selectors import PipelineOverview
from control_plane.runs.models import Run


@dataclass(frozen=True)
class Link:
    text: str
    url: str
    id: str = ""


@dataclass(frozen=True)
class Item:
    """One line of the home page: what it is, a link to it, its state and a short detail."""

    label: str
    link: Link
    state: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Step:
    number: int
    key: str
    title: str
    blurb: str
    items: list[Item]
    empty: str  # shown when there is no item yet
    action: Link | None  # None: the user may not do it
    more: list[Link] = field(default_factory=list)
    hint: str = ""  # what the action needs first, or what it will do


def _change_url(model: str, pk: int) -> str:
    return reverse(f"admin:{model}_change", args=[pk])


def _with_query(url: str, **params: str) -> str:
    params = {key: value for key, value in params.items() if value}
    return f"{url}?{urlencode(params)}" if params else url


class _Permissions:
    """The user's permissions as the home page needs them: view to list items, add to act."""

    def __init__(self, user):
        self.user = user

    def view(self, app: str, model: str) -> bool:
        return self.user.has_perm(f"{app}.view_{model}") or self.user.has_perm(f"{app}.change_{model}")

    def add(self, app: str, model: str) -> bool:
        return self.user.has_perm(f"{app}.add_{model}")


def running_items(overview: PipelineOverview, can: _Permissions) -> list[Item]:
    """Generation jobs and runs not finished yet, each linking to its live progress page."""
    items: list[Item] = []
    if can.view("datasets", "generationjob"):
        for job in overview.active_jobs:
            items.append(
                Item(
                    "Generation",
                    Link(job.dataset.name, _change_url("datasets_generationjob", job.pk)),
                    job.state,
                    f"{job.kept}/{job.target_rows} rows",
                )
            )
    if can.view("runs", "run"):
        for run in overview.active_runs:
            progress = f"{run.percent}%, step {run.step}/{run.max_steps}" if run.max_steps else ""
            if run.state == Run.State.QUEUED and run.queue_position:
                progress = f"queue position {run.queue_position}"
            items.append(
                Item("Fine-tune", Link(run.run_id, _change_url("runs_run", run.pk)), run.state, progress)
            )
    return items


def _generate(overview: PipelineOverview, can: _Permissions) -> Step:
    items = []
    dataset = overview.latest_dataset
    if dataset and can.view("datasets", "dataset"):
        items.append(
            Item(
                "Latest dataset",
                Link(dataset.name, _change_url("datasets_dataset", dataset.pk), "latest-dataset"),
                dataset.status,
                f"{dataset.rows} rows, {dataset.source}",
            )
        )
    allowed = can.add("datasets", "dataset")
    return Step(
        1,
        "generate",
        "Generate",
        "Make an instruction dataset with any OpenAI-compatible endpoint as the teacher, or upload one.",
        items,
        "No dataset yet.",
        Link("Generate a dataset", reverse("admin:datasets_dataset_generate"), "action-generate")
        if allowed
        else None,
        [Link("Upload a dataset", reverse("admin:datasets_dataset_upload"), "action-upload")]
        if allowed
        else [],
    )


def _fine_tune(overview: PipelineOverview, can: _Permissions) -> Step:
    items = []
    run = overview.latest_run
    if run and can.view("runs", "run"):
        items.append(
            Item(
                "Latest run",
                Link(run.run_id, _change_url("runs_run", run.pk), "latest-run"),
                run.state,
                f"{run.base_model}, {run.percent}%",
            )
        )
    ready = overview.latest_ready_dataset
    action = None
    if can.add("runs", "run"):
        # The newest ready dataset comes ticked: the usual next step after generating it.
        url = _with_query(reverse("admin:runs_run_fine_tune"), datasets=ready.name if ready else "")
        action = Link("Start fine-tune", url, "action-fine-tune")
    if ready is None:
        hint = "Needs a ready dataset: generate or upload one first."
    else:
        hint = f"Opens with {ready.name} ticked."
    return Step(
        2,
        "fine_tune",
        "Fine-tune",
        "Train a LoRA adapter on ready datasets; watch the loss curve live.",
        items,
        "No run yet.",
        action,
        hint=hint,
    )


def _serve(overview: PipelineOverview, can: _Permissions) -> Step:
    items = []
    adapter = overview.latest_adapter
    if adapter and can.view("runs", "adapter"):
        items.append(
            Item(
                "Latest adapter",
                Link(adapter.name, _change_url("runs_adapter", adapter.pk), "latest-adapter"),
                "",
                f"on {adapter.base_model}",
            )
        )
    if can.view("deployments", "deployment"):
        for deployment in overview.loaded:
            items.append(
                Item(
                    "Loaded",
                    Link(deployment.served_name, _change_url("deployments_deployment", deployment.pk)),
                    deployment.state,
                    f"on {deployment.target}",
                )
            )
    action = None
    if can.add("deployments", "deployment"):
        # The adapter's own page has the Load button; without one, the list says why it's empty.
        url = _change_url("runs_adapter", adapter.pk) if adapter else reverse("admin:runs_adapter_changelist")
        action = Link("Load an adapter", url, "action-load")
    return Step(
        3,
        "serve",
        "Serve",
        "Hot-load an adapter into the running vLLM, next to its base model.",
        items,
        "No adapter yet.",
        action,
        hint="" if adapter else "Needs an adapter: a fine-tune that succeeds exports one.",
    )


def _compare(overview: PipelineOverview, can: _Permissions) -> Step:
    items = []
    comparison = overview.latest_comparison
    if comparison and can.view("deployments", "comparison"):
        items.append(
            Item(
                "Latest comparison",
                Link(
                    f"{comparison.get_kind_display()} #{comparison.pk}",
                    _change_url("deployments_comparison", comparison.pk),
                    "latest-comparison",
                ),
                "",
                f"{comparison.adapter.name} vs its base",
            )
        )
    loaded = overview.loaded[0].adapter.name if overview.loaded else ""
    action = None
    if can.add("deployments", "comparison"):
        action = Link(
            "Compare", _with_query(reverse("admin:deployments_compare"), adapter=loaded), "action-compare"
        )
    return Step(
        4,
        "compare",
        "Compare",
        "Send prompts (or held-out rows) to the base model and the adapter; read them side by side.",
        items,
        "No comparison yet.",
        action,
        hint=f"Opens with {loaded} chosen." if loaded else "Needs a loaded adapter (step 3).",
    )


def pipeline_steps(overview: PipelineOverview, can: _Permissions) -> list[Step]:
    """The four steps in pipeline order."""
    return [step(overview, can) for step in (_generate, _fine_tune, _serve, _compare)]


class SynthtuneAdminSite(admin.AdminSite):
    site_header = "synthtune"
    site_title = "synthtune admin"
    index_title = "Control plane"
    index_template = "admin/core/index.html"

    def index(self, request, extra_context=None):
        """The pipeline first, then the usual app list."""
        overview = selectors.pipeline_overview()
        can = _Permissions(request.user)
        context = {
            **(extra_context or {}),
            "running": running_items(overview, can),
            "steps": pipeline_steps(overview, can),
        }
        return super().index(request, extra_context=context)
