"""Admin (staff only): datasets with previews, the Generate and Upload forms, jobs with live
progress. Every write goes through the same services as the API."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from control_plane.core.errors import SynthtuneError
from control_plane.datasets import selectors, services, versions
from control_plane.datasets.forms import CurateForm, GenerateForm, UploadForm
from control_plane.datasets.generation import CurateParams, GenerationParams
from control_plane.datasets.models import Dataset, GenerationJob
from control_plane.datasets.version_forms import CompareForm, MergeForm, NewVersionForm
from synthtune import records

PREVIEW_ROWS = 20
EVENTS_SHOWN = 200


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows change only through services (generate, upload, the worker), never by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _preview_row(row) -> dict:
    """A row as instruction/output columns, whichever format it is in."""
    try:
        records.row_format(row)
    except ValueError as exc:
        return {
            "instruction": json.dumps(row, ensure_ascii=False)[:500],
            "output": f"(not a valid row: {exc})",
        }
    return records.to_instruction(row)


def _metadata_view(meta) -> dict | None:
    """A row's metadata (the sidecar line) as the preview shows it: strategy, topic path, judge."""
    if not isinstance(meta, dict):
        return None
    judge = meta.get("judge") if isinstance(meta.get("judge"), dict) else {}
    scores = judge.get("scores") if isinstance(judge.get("scores"), dict) else {}
    topic = meta.get("topic_path")
    return {
        "strategy": meta.get("strategy") or "",
        "topic_path": " › ".join(map(str, topic)) if isinstance(topic, list) else str(topic or ""),
        "judge_mean": judge.get("mean"),
        "judge_scores": ", ".join(f"{k} {v}" for k, v in scores.items()),
        "judge_reason": judge.get("reason") or "",
    }


def _form_error(form, exc: SynthtuneError) -> None:
    field = exc.extra.get("field") or ""
    if hasattr(form, "form_field"):  # API field names ("filters.judge.base_url") -> the form's
        field = form.form_field(field)
    form.add_error(field if field in form.fields else None, exc.message)


@admin.register(Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "family",
        "version",
        "status",
        "source",
        "format",
        "rows",
        "size_bytes",
        "owner",
        "created_at",
    )
    list_filter = ("status", "source", "format", "created_at")
    search_fields = ("name", "sha256")
    fields = (
        "name",
        "status",
        "error",
        "source",
        "format",
        "rows",
        "size_bytes",
        "sha256",
        "path",
        "params",
        "family",
        "version",
        "parent",
        "operation",
        "owner",
        "created_at",
        "updated_at",
    )
    change_list_template = "admin/datasets/dataset/change_list.html"
    change_form_template = "admin/datasets/dataset/change_form.html"
    actions = ("fine_tune", "curate", "merge_datasets")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("generate/", view(self.generate_view), name="datasets_dataset_generate"),
            path("upload/", view(self.upload_view), name="datasets_dataset_upload"),
            path("<int:pk>/curate/", view(self.curate_view), name="datasets_dataset_curate"),
            path("merge/", view(self.merge_view), name="datasets_dataset_merge"),
            path("<int:pk>/new-version/", view(self.new_version_view), name="datasets_dataset_new_version"),
            path("<int:pk>/diff/", view(self.diff_view), name="datasets_dataset_diff"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dataset = self.get_object(request, object_id)
        if dataset is None:  # let the admin answer an unknown id its usual way
            return super().change_view(request, object_id, form_url, extra_context)
        try:
            stored = selectors.dataset_preview(dataset=dataset, limit=PREVIEW_ROWS)
            metadata = versions.padded(versions.row_metadata(dataset))
            rows = [{**_preview_row(row), "meta": _metadata_view(next(metadata))} for row in stored]
            preview_error = ""
        except SynthtuneError as exc:
            rows, preview_error = [], exc.message
        lineage = versions.dataset_lineage(dataset=dataset)
        others = Dataset.objects.exclude(pk=dataset.pk).order_by("family", "version")
        context = {
            **(extra_context or {}),
            "preview_rows": rows,
            "preview_error": preview_error,
            "jobs": dataset.jobs.all(),
            "lineage": lineage,
            "has_metadata": any(row["meta"] for row in rows),
            "compare_form": CompareForm(
                initial={"against": lineage.ancestors[-1].name if lineage.ancestors else ""}
            ),
            "compare_choices": others.values_list("name", flat=True)[:500],
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def has_fine_tune_permission(self, request) -> bool:
        return request.user.has_perm("runs.add_run")

    @admin.action(description="Start fine-tune on the selected datasets", permissions=["fine_tune"])
    def fine_tune(self, request, queryset):
        """Open the Start fine-tune form (the runs admin) with the selected datasets ticked."""
        names = list(queryset.order_by("name").values_list("name", flat=True))
        query = urlencode({"datasets": names}, doseq=True)
        return HttpResponseRedirect(f"{reverse('admin:runs_run_fine_tune')}?{query}")

    def has_merge_permission(self, request) -> bool:
        return request.user.has_perm("datasets.add_dataset")

    @admin.action(description="Merge the selected datasets into a new version", permissions=["merge"])
    def merge_datasets(self, request, queryset):
        """Open the merge form with the selected datasets, oldest first (reorder them there)."""
        names = list(queryset.order_by("created_at", "id").values_list("name", flat=True))
        query = urlencode({"sources": names}, doseq=True)
        return HttpResponseRedirect(f"{reverse('admin:datasets_dataset_merge')}?{query}")

    def merge_view(self, request):
        self._require_add(request)
        initial = {"sources": "\n".join(request.GET.getlist("sources")), "dedupe": True}
        form = MergeForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                sources = versions.dataset_versions_resolve(
                    refs=form.cleaned_data["sources"], field="sources"
                )
                dataset = versions.dataset_merge(
                    owner=request.user,
                    name=form.cleaned_data["name"] or None,
                    sources=sources,
                    dedupe=form.cleaned_data["dedupe"],
                )
            except SynthtuneError as exc:
                _form_error(form, exc)
            else:
                messages.success(
                    request, f"Merged into {dataset.name!r} (version {dataset.version}): {dataset.rows} rows."
                )
                return HttpResponseRedirect(reverse("admin:datasets_dataset_change", args=[dataset.pk]))
        return self._render(
            request, title="Merge datasets", form=form, form_id="merge-form", submit_label="Merge"
        )

    def new_version_view(self, request, pk: int):
        """An edit: a new version of the dataset from a file, the dataset itself left as it is."""
        self._require_add(request)
        parent = get_object_or_404(Dataset, pk=pk)
        form = NewVersionForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                dataset = versions.dataset_edit(
                    owner=request.user,
                    parent=parent,
                    name=form.cleaned_data["name"] or None,
                    data=form.cleaned_data["file"].read(),
                )
            except SynthtuneError as exc:
                _form_error(form, exc)
            else:
                messages.success(
                    request, f"New version {dataset.name!r} (version {dataset.version}) of {parent.name!r}."
                )
                return HttpResponseRedirect(reverse("admin:datasets_dataset_change", args=[dataset.pk]))
        return self._render(
            request,
            title=f"New version of {parent.name}",
            form=form,
            form_id="new-version-form",
            submit_label="Create version",
        )

    def diff_view(self, request, pk: int):
        """This dataset compared with another (`against`): rows added, removed, changed."""
        dataset = get_object_or_404(Dataset, pk=pk)
        form = CompareForm(request.GET or None)
        report, error = None, ""
        if form.is_valid():
            try:
                old = versions.dataset_version_get(ref=form.cleaned_data["against"], field="against")
                report = versions.dataset_diff(old=old, new=dataset, examples=PREVIEW_ROWS)
            except SynthtuneError as exc:
                error = exc.message
        examples = report.examples if report else {"added": [], "removed": [], "changed": []}
        context = {
            **self.admin_site.each_context(request),
            "title": f"Compare {dataset.name}",
            "opts": self.model._meta,
            "dataset": dataset,
            "form": form,
            "report": report,
            "added": [_preview_row(row) for row in examples["added"]],
            "removed": [_preview_row(row) for row in examples["removed"]],
            "changed": [
                {"old": _preview_row(p["old"]), "new": _preview_row(p["new"])} for p in examples["changed"]
            ],
            "error": error,
        }
        return TemplateResponse(request, "admin/datasets/dataset/diff.html", context)

    def has_curate_permission(self, request) -> bool:
        return request.user.has_perm("datasets.add_dataset")

    @admin.action(description="Curate into a new version", permissions=["curate"])
    def curate(self, request, queryset):
        """Open the Curate form for the one selected dataset."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one dataset to curate.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:datasets_dataset_curate", args=[queryset.get().pk]))

    @method_decorator(sensitive_post_parameters("judge_token"))
    def curate_view(self, request, pk: int):
        self._require_add(request)
        parent = get_object_or_404(Dataset, pk=pk)
        form = CurateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            params, judge_token = form.params_and_judge_token()
            try:
                job = services.dataset_curate(
                    owner=request.user, parent=parent, params=CurateParams(**params), judge_token=judge_token
                )
            except SynthtuneError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Curating {parent.name!r} into {job.dataset.name!r} started.")
                return HttpResponseRedirect(reverse("admin:datasets_generationjob_change", args=[job.pk]))
        return self._render(
            request,
            title=f"Curate {parent.name} into a new version",
            form=form,
            form_id="curate-form",
            submit_label="Start curating",
        )

    def _require_add(self, request) -> None:
        if not request.user.has_perm("datasets.add_dataset"):
            raise PermissionDenied

    def _render(self, request, *, title: str, form, form_id: str, submit_label: str) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "form_id": form_id,
            "submit_label": submit_label,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/core/form_page.html", context)

    @method_decorator(sensitive_post_parameters("token", "judge_token"))
    def generate_view(self, request):
        self._require_add(request)
        form = GenerateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            params, token, judge_token = form.params_and_tokens()
            try:
                job = services.dataset_generate(
                    owner=request.user,
                    params=GenerationParams(**params),
                    token=token,
                    judge_token=judge_token,
                )
            except SynthtuneError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Generation of {job.dataset.name!r} started.")
                return HttpResponseRedirect(reverse("admin:datasets_generationjob_change", args=[job.pk]))
        return self._render(
            request,
            title="Generate dataset",
            form=form,
            form_id="generate-form",
            submit_label="Start generation",
        )

    def upload_view(self, request):
        self._require_add(request)
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            name = form.cleaned_data["name"] or PurePosixPath(upload.name).name.removesuffix(".jsonl")
            try:
                dataset = services.dataset_upload(owner=request.user, name=name, data=upload.read())
            except SynthtuneError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Dataset {dataset.name!r} uploaded: {dataset.rows} rows.")
                return HttpResponseRedirect(reverse("admin:datasets_dataset_change", args=[dataset.pk]))
        return self._render(
            request, title="Upload dataset", form=form, form_id="upload-form", submit_label="Upload"
        )


def _report_rows(report: dict) -> dict | None:
    """The filters' report for the job page: rows dropped per check, and the other counts."""
    if not report:
        return None
    return {
        "dropped_by": sorted((report.get("dropped_by") or {}).items()),
        "near_dup_clusters": report.get("near_dup_clusters", 0),
        "judged": report.get("judged", 0),
        "judge_failures": report.get("judge_failures", 0),
    }


@admin.register(GenerationJob)
class GenerationJobAdmin(ReadOnlyAdmin):
    list_display = ("job_id", "dataset", "state", "kept", "target_rows", "dropped", "failed", "updated_at")
    list_filter = ("state", "created_at")
    search_fields = ("job_id", "dataset__name")
    list_select_related = ("dataset",)
    fields = (
        "job_id",
        "dataset",
        "state",
        "error",
        "target_rows",
        "kept",
        "dropped",
        "failed",
        "prompt_tokens",
        "completion_tokens",
        "judge_prompt_tokens",
        "judge_completion_tokens",
        "metadata_path",
        "last_seq",
        "created_at",
        "updated_at",
        "finished_at",
    )
    actions = ("cancel_jobs",)
    change_form_template = "admin/datasets/generationjob/change_form.html"

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("datasets.change_generationjob")

    def get_urls(self):
        cancel = self.admin_site.admin_view(self.cancel_view)
        return [path("<int:pk>/cancel/", cancel, name="datasets_generationjob_cancel"), *super().get_urls()]

    def cancel_view(self, request, pk: int):
        if request.method != "POST" or not self.has_cancel_permission(request):
            raise PermissionDenied
        job = get_object_or_404(GenerationJob, pk=pk)
        try:
            services.generation_cancel(job=job)
            self.message_user(request, f"Asked the datagen service to cancel {job.job_id}.", messages.SUCCESS)
        except SynthtuneError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:datasets_generationjob_change", args=[pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        if job is None:
            return super().change_view(request, object_id, form_url, extra_context)
        events = reversed(job.events.order_by("-seq")[:EVENTS_SHOWN])
        context = {
            **(extra_context or {}),
            "job": job,
            "events": [{**event.as_dict(), "payload": json.dumps(event.payload)} for event in events],
            "stream_url": reverse("datasets:generation-job-event-stream", args=[job.job_id]),
            "report": _report_rows(job.report),
            "dataset_url": reverse("admin:datasets_dataset_change", args=[job.dataset.pk]),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.action(description="Cancel selected generation jobs", permissions=["cancel"])
    def cancel_jobs(self, request, queryset):
        cancelled = 0
        for job in queryset.select_related("dataset"):
            try:
                services.generation_cancel(job=job)
                cancelled += 1
            except SynthtuneError as exc:
                self.message_user(request, f"{job.job_id}: {exc.message}", messages.ERROR)
        if cancelled:
            self.message_user(
                request, f"Asked the datagen service to cancel {cancelled} job(s).", messages.SUCCESS
            )
