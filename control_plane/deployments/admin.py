"""Admin (staff only): deployments as vLLM really serves them (reconciled on every look), the
Compare page (one prompt side by side, or a batch over held-out rows), recorded comparisons.
Every write goes through the same services as the API."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from control_plane.core.errors import SynthtuneError
from control_plane.datasets.admin import ReadOnlyAdmin
from control_plane.deployments import services
from control_plane.deployments.forms import BatchCompareForm, CompareForm
from control_plane.deployments.models import Comparison, Deployment


def _form_error(form, exc: SynthtuneError) -> None:
    field = str(exc.extra.get("field") or "").removeprefix("sampling.")
    field = getattr(form, "JUDGE_FIELDS", {}).get(field, field)
    form.add_error(field if field in form.fields else None, exc.message)


def reconcile_for_page(request, admin_instance) -> None:
    """Check deployments against vLLM before showing them; say so when it can't be done."""
    try:
        services.deployment_reconcile()
    except SynthtuneError as exc:
        admin_instance.message_user(
            request,
            f"Could not check deployments against vLLM; states are as last seen. {exc.message}",
            messages.WARNING,
        )


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "adapter_link",
        "target",
        "served_name",
        "state_badge",
        "error",
        "loaded_at",
        "unloaded_at",
        "checked_at",
        "owner",
    )
    list_filter = ("state", "target", "created_at")
    search_fields = ("adapter__name", "served_name", "target")
    list_select_related = ("adapter", "owner")
    fields = (
        "adapter_link",
        "target",
        "served_name",
        "state",
        "error",
        "owner",
        "loaded_at",
        "unloaded_at",
        "checked_at",
        "created_at",
        "updated_at",
    )
    actions = ("unload_deployments",)
    change_list_template = "admin/deployments/deployment/change_list.html"

    @admin.display(description="Adapter", ordering="adapter__name")
    def adapter_link(self, deployment: Deployment):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:runs_adapter_change", args=[deployment.adapter_id]),
            deployment.adapter.name,
        )

    @admin.display(description="State", ordering="state")
    def state_badge(self, deployment: Deployment):
        return format_html('<span class="deployment-state" data-state="{0}">{0}</span>', deployment.state)

    def has_unload_permission(self, request) -> bool:
        return request.user.has_perm("deployments.change_deployment")

    def has_compare_permission(self, request) -> bool:
        return request.user.has_perm("deployments.add_comparison")

    def get_urls(self):
        view = self.admin_site.admin_view(self.compare_view)
        return [path("compare/", view, name="deployments_compare"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            reconcile_for_page(request, self)
        context = {**(extra_context or {}), "compare_url": reverse("admin:deployments_compare")}
        return super().changelist_view(request, extra_context=context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            reconcile_for_page(request, self)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Unload the selected deployments from vLLM", permissions=["unload"])
    def unload_deployments(self, request, queryset):
        done = 0
        for deployment in queryset.select_related("adapter"):
            try:
                services.deployment_unload(deployment=deployment)
                done += 1
            except SynthtuneError as exc:
                self.message_user(request, f"{deployment}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Unloaded {done} deployment(s).", messages.SUCCESS)

    @method_decorator(sensitive_post_parameters("one-token", "batch-token", "batch-judge_token"))
    def compare_view(self, request):
        """One prompt through the base model and the adapter, side by side; and the batch form
        (compare.js streams it from the API; without JS it posts here and waits)."""
        if not self.has_compare_permission(request):
            raise PermissionDenied
        initial = {"adapter": request.GET.get("adapter", "")}
        posted = request.POST if request.method == "POST" else None
        is_batch = posted is not None and "_batch" in posted
        one = CompareForm(None if is_batch else posted, prefix="one", initial=initial)
        batch = BatchCompareForm(posted if is_batch else None, prefix="batch", initial=initial)
        result = batch_result = None
        if posted is not None and not is_batch and one.is_valid():
            try:
                comparison = services.comparison_run_one(owner=request.user, **one.params())
                result = {
                    "comparison": comparison,
                    "sides": [
                        {"key": "base", "label": "Base model", **comparison.result["base"]},
                        {"key": "adapter", "label": "Adapter", **comparison.result["adapter"]},
                    ],
                }
            except SynthtuneError as exc:
                _form_error(one, exc)
        if is_batch and batch.is_valid():
            try:
                running = services.comparison_start_batch(owner=request.user, **batch.params())
                for _ in running.events():
                    pass
                batch_result = {
                    "rows": running.rows,
                    "summary": running.summary,
                    "comparison": running.comparison,
                }
            except SynthtuneError as exc:
                _form_error(batch, exc)
        context = {
            **self.admin_site.each_context(request),
            "title": "Compare base and adapter",
            "opts": self.model._meta,
            "form": one,
            "batch_form": batch,
            "result": result,
            "batch_result": batch_result,
            "batch_api_url": reverse("deployments:compare-batch"),
            "loaded": Deployment.objects.filter(state=Deployment.State.LOADED).select_related("adapter"),
        }
        return TemplateResponse(request, "admin/deployments/compare.html", context)


@admin.register(Comparison)
class ComparisonAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "adapter", "served_name", "target", "prompt_format", "owner", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("adapter__name", "served_name")
    list_select_related = ("adapter", "owner")
    fields = (
        "kind",
        "adapter",
        "served_name",
        "target",
        "prompt_format",
        "request",
        "result",
        "summary",
        "owner",
        "created_at",
    )
