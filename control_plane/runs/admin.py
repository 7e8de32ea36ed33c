"""Admin (staff only): the Start fine-tune form, runs with live progress and the loss curve,
adapters with their manifests, and Load (a button and an action) / Unload into vLLM with a
link to Compare.
Every write goes through the same services as the API."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from control_plane.core.errors import SynthtuneError
from control_plane.datasets.admin import ReadOnlyAdmin
from control_plane.deployments import selectors as deployment_selectors
from control_plane.deployments import services as deployment_services
from control_plane.deployments.models import Deployment
from control_plane.runs import selectors, services
from control_plane.runs.forms import FineTuneForm
from control_plane.runs.models import Adapter, Run
from control_plane.runs.params import RunParams

EVENTS_SHOWN = 200
# Asking the proxy what vLLM serves, for the Start fine-tune form. 3 s was too short on a loaded
# 2-core machine (a CI run fell back to the default model once); a hung proxy costs the form 8 s.
SUGGEST_TIMEOUT_S = 8.0


def _adapter_of(run: Run) -> Adapter | None:
    # A missing reverse one-to-one raises RelatedObjectDoesNotExist, an AttributeError.
    return getattr(run, "adapter", None)


def _form_error(form, exc: SynthtuneError) -> None:
    # API field names ("hyperparameters.learning_rate") are the form's plain ones.
    field = str(exc.extra.get("field") or "").removeprefix("hyperparameters.")
    form.add_error(field if field in form.fields else None, exc.message)


def _base_model_suggestions() -> list[tuple[str, str]]:
    """The form's base-model suggestions, what vLLM serves first. A slow or absent proxy only
    costs the suggestion, never the form."""
    try:
        served = deployment_selectors.served_base_models(timeout_s=SUGGEST_TIMEOUT_S)
    except SynthtuneError:
        served = []
    return selectors.run_base_model_suggestions(served=served)


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = (
        "run_id",
        "state",
        "base_model",
        "progress",
        "loss",
        "adapter_link",
        "owner",
        "created_at",
    )
    list_filter = ("state", "base_model", "created_at")
    search_fields = ("run_id", "base_model", "datasets__name")
    list_select_related = ("owner", "adapter")
    # State, error, step and epoch are in the live progress panel above the fields.
    fields = (
        "run_id",
        "base_model",
        "datasets",
        "eval_datasets",
        "adapter_link",
        "prompt_format",
        "queue_position",
        "resumed_from_step",
        "resumes",
        "hyperparameters",
        "config",
        "dataset_reports",
        "eval_dataset_reports",
        "train_rows",
        "eval_rows",
        "truncated_rows",
        "metrics",
        "merge_full_model",
        "last_seq",
        "owner",
        "created_at",
        "started_at",
        "finished_at",
    )
    actions = ("cancel_runs", "resume_runs")
    change_form_template = "admin/runs/run/change_form.html"

    @admin.display(description="Progress")
    def progress(self, run: Run) -> str:
        return f"{run.percent}% ({run.step}/{run.max_steps})" if run.max_steps else f"{run.percent}%"

    @admin.display(description="Loss")
    def loss(self, run: Run) -> str:
        value = run.metrics.get("train_loss", run.metrics.get("loss"))
        return f"{value:.4f}" if isinstance(value, (int, float)) else "-"

    @admin.display(description="Adapter")
    def adapter_link(self, run: Run):
        adapter = _adapter_of(run)
        if adapter is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:runs_adapter_change", args=[adapter.pk]), adapter.name
        )

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("runs.change_run")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("fine-tune/", view(self.fine_tune_view), name="runs_run_fine_tune"),
            path("<int:pk>/cancel/", view(self.cancel_view), name="runs_run_cancel"),
            *super().get_urls(),
        ]

    def fine_tune_view(self, request):
        """The Start fine-tune form: the same service as POST /api/v1/runs/, so the same checks
        and errors (the trainer's land on their field). The datasets admin's action and the
        home page open it with ?datasets=<name>... ticked."""
        if not request.user.has_perm("runs.add_run"):
            raise PermissionDenied
        initial = {"datasets": request.GET.getlist("datasets")}
        form = FineTuneForm(request.POST or None, initial=initial, base_models=_base_model_suggestions())
        if request.method == "POST" and form.is_valid():
            try:
                run = services.run_start(owner=request.user, params=RunParams(**form.params()))
            except SynthtuneError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Fine-tuning run {run.run_id} started.")
                return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Start fine-tune",
            "form": form,
            "form_id": "fine-tune-form",
            "submit_label": "Start fine-tuning",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/core/form_page.html", context)

    def cancel_view(self, request, pk: int):
        if request.method != "POST" or not self.has_cancel_permission(request):
            raise PermissionDenied
        run = get_object_or_404(Run, pk=pk)
        try:
            services.run_cancel(run=run)
            self.message_user(request, f"Asked the trainer to cancel {run.run_id}.", messages.SUCCESS)
        except SynthtuneError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:runs_run_change", args=[pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        if run is None:
            return super().change_view(request, object_id, form_url, extra_context)
        events = reversed(run.events.order_by("-seq")[:EVENTS_SHOWN])
        adapter = _adapter_of(run)
        context = {
            **(extra_context or {}),
            "run": run,
            "events": [{**event.as_dict(), "payload": json.dumps(event.payload)} for event in events],
            "loss_history": selectors.run_loss_history(run=run),
            "eval_history": selectors.run_eval_history(run=run),
            "stream_url": reverse("runs:run-event-stream", args=[run.run_id]),
            "adapter_url": reverse("admin:runs_adapter_change", args=[adapter.pk]) if adapter else "",
            "adapter_name": adapter.name if adapter else "",
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_runs(self, request, queryset):
        self._ask_trainer(request, queryset, services.run_cancel, "cancel")

    @admin.action(description="Resume selected failed runs (from their newest checkpoint)", permissions=["cancel"])
    def resume_runs(self, request, queryset):
        self._ask_trainer(request, queryset, services.run_resume, "resume")

    def _ask_trainer(self, request, queryset, service, verb: str) -> None:
        """`service(run=...)` for each selected run; one message per refusal, one for the rest."""
        asked = 0
        for run in queryset:
            try:
                service(run=run)
                asked += 1
            except SynthtuneError as exc:
                self.message_user(request, f"{run.run_id}: {exc.message}", messages.ERROR)
        if asked:
            self.message_user(request, f"Asked the trainer to {verb} {asked} run(s).", messages.SUCCESS)


@admin.register(Adapter)
class AdapterAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "base_model",
        "prompt_format",
        "run_link",
        "deployed",
        "compare_link",
        "weights_sha256_short",
        "created_at",
    )
    list_filter = ("base_model", "prompt_format", "created_at")
    search_fields = ("name", "base_model", "run__run_id", "weights_sha256")
    list_select_related = ("run",)
    fields = (
        "name",
        "path",
        "run_link",
        "base_model",
        "prompt_format",
        "weights_sha256",
        "merged_model_path",
        "created_at",
        "deployed",
        "compare_link",
        "manifest_view",
    )
    actions = ("load_adapters", "unload_adapters")
    change_form_template = "admin/runs/adapter/change_form.html"

    def has_load_permission(self, request) -> bool:
        return request.user.has_perm("deployments.add_deployment")

    def has_unload_permission(self, request) -> bool:
        return request.user.has_perm("deployments.change_deployment")

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":  # the Deployed column: as vLLM serves them now
            try:
                deployment_services.deployment_reconcile()
            except SynthtuneError as exc:
                self.message_user(
                    request, f"Could not check deployments against vLLM: {exc.message}", messages.WARNING
                )
        return super().changelist_view(request, extra_context)

    def _load(self, request, adapter: Adapter) -> None:
        """Load one adapter through the deployments service and say how it went, per replica.
        (Messages start with "Adapter": the admin capitalises a message's first letter.)"""
        try:
            outcome = deployment_services.deployment_load(adapter_name=adapter.name, owner=request.user)
        except SynthtuneError as exc:
            self.message_user(request, f"Adapter {adapter.name}: {exc.message}", messages.ERROR)
            return
        targets = ", ".join(d.target for d in outcome.loaded)
        self.message_user(
            request,
            f"Adapter {adapter.name}: loaded as {outcome.served_name} on {targets}.",
            messages.SUCCESS,
        )
        for deployment in outcome.deployments:
            if deployment.state == Deployment.State.FAILED:
                self.message_user(
                    request,
                    f"Adapter {adapter.name} on {deployment.target}: {deployment.error}",
                    messages.ERROR,
                )

    @admin.action(description="Load into vLLM (the proxy's replicas)", permissions=["load"])
    def load_adapters(self, request, queryset):
        for adapter in queryset:
            self._load(request, adapter)

    def load_view(self, request, pk: int):
        """The Load button of the adapter's page (POST): the same as the Load action."""
        if request.method != "POST" or not self.has_load_permission(request):
            raise PermissionDenied
        adapter = get_object_or_404(Adapter, pk=pk)
        self._load(request, adapter)
        return HttpResponseRedirect(reverse("admin:runs_adapter_change", args=[pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        adapter = self.get_object(request, object_id)
        if adapter is None:
            return super().change_view(request, object_id, form_url, extra_context)
        context = {
            **(extra_context or {}),
            "adapter": adapter,
            # As last reconciled (the worker checks every SYNTHTUNE_RECONCILE_S).
            "loaded": deployment_selectors.deployment_list(
                state=Deployment.State.LOADED, adapter=adapter.name
            ),
            "can_load": self.has_load_permission(request),
            "compare_url": f"{reverse('admin:deployments_compare')}?{urlencode({'adapter': adapter.name})}",
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.action(description="Unload from vLLM", permissions=["unload"])
    def unload_adapters(self, request, queryset):
        for adapter in queryset:
            try:
                unloaded = deployment_services.adapter_unload(adapter=adapter)
            except SynthtuneError as exc:
                self.message_user(request, f"Adapter {adapter.name}: {exc.message}", messages.ERROR)
                continue
            where = ", ".join(d.target for d in unloaded)
            self.message_user(request, f"Adapter {adapter.name}: unloaded from {where}.", messages.SUCCESS)

    @admin.display(description="Deployed")
    def deployed(self, adapter: Adapter):
        live = [d for d in adapter.deployments.all() if d.state == Deployment.State.LOADED]
        if not live:
            return "-"
        return format_html(
            '<a href="{}?adapter__name={}&state=loaded">loaded on {}</a>',
            reverse("admin:deployments_deployment_changelist"),
            adapter.name,
            ", ".join(sorted({d.target for d in live})),
        )

    @admin.display(description="Compare")
    def compare_link(self, adapter: Adapter):
        return format_html(
            '<a href="{}?adapter={}" class="compare-link">Compare</a>',
            reverse("admin:deployments_compare"),
            adapter.name,
        )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("deployments")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("by-name/", view(self.by_name_view), name="runs_adapter_by_name"),
            path("<int:pk>/load/", view(self.load_view), name="runs_adapter_load"),
            *super().get_urls(),
        ]

    def by_name_view(self, request):
        """?name=: the adapter's page by name (the run page's live events know the name, not the id)."""
        adapter = get_object_or_404(Adapter, name=request.GET.get("name", ""))
        return HttpResponseRedirect(reverse("admin:runs_adapter_change", args=[adapter.pk]))

    @admin.display(description="Run")
    def run_link(self, adapter: Adapter):
        if adapter.run is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[adapter.run.pk]), adapter.run.run_id
        )

    @admin.display(description="Weights sha256")
    def weights_sha256_short(self, adapter: Adapter) -> str:
        return adapter.weights_sha256[:12]

    @admin.display(description="Manifest")
    def manifest_view(self, adapter: Adapter):
        return format_html(
            '<pre id="adapter-manifest">{}</pre><a href="{}">Download manifest.json</a>',
            json.dumps(adapter.manifest, indent=2, ensure_ascii=False),
            reverse("runs:adapter-manifest", args=[adapter.name]),
        )
