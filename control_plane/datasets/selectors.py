"""Reads: lists with filters, lookups that raise NotFound, previews and exports of files."""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.db.models import QuerySet

from control_plane.core.errors import FailedPrecondition, InvalidArgument, NotFound
from control_plane.datasets import storage
from control_plane.datasets.models import Dataset, GenerationJob, JobEvent
from synthtune import records


def dataset_list(
    *,
    status: str | None = None,
    source: str | None = None,
    format: str | None = None,
    owner: str | None = None,
    search: str | None = None,
) -> QuerySet[Dataset]:
    datasets = Dataset.objects.select_related("owner", "parent")
    if status:
        datasets = datasets.filter(status=status)
    if source:
        datasets = datasets.filter(source=source)
    if format:
        datasets = datasets.filter(format=format)
    if owner:
        datasets = datasets.filter(owner__username=owner)
    if search:
        datasets = datasets.filter(name__icontains=search)
    return datasets


def dataset_get(*, name: str) -> Dataset:
    try:
        return Dataset.objects.select_related("owner").get(name=name)
    except Dataset.DoesNotExist:
        raise NotFound(f"No dataset named {name!r}.", field="name") from None


def dataset_preview(*, dataset: Dataset, limit: int) -> list[dict]:
    """The first `limit` rows as stored. While generating (or after a cancel) these come
    from the .partial file, so the rows so far can be looked at."""
    path = storage.absolute(dataset.path)
    for candidate in (path, storage.partial(path)):
        if candidate.exists():
            return storage.first_rows(candidate, limit)
    if dataset.status == Dataset.Status.READY:
        raise NotFound(f"The file {dataset.path} of dataset {dataset.name!r} is missing from the data root.")
    return []


def dataset_export(*, dataset: Dataset, fmt: str | None) -> Iterator[bytes]:
    """The dataset's JSONL, as stored (fmt None) or converted to "instruction" or "chat"."""
    if fmt is not None and fmt not in records.FORMATS:
        raise InvalidArgument(
            f"format must be one of {', '.join(records.FORMATS)}, not {fmt!r}.", field="format"
        )
    if dataset.status != Dataset.Status.READY:
        raise FailedPrecondition(
            f"Dataset {dataset.name!r} is {dataset.status}; only ready datasets can be downloaded "
            "(its first rows are in the preview)."
        )
    path = storage.absolute(dataset.path)
    if not path.exists():
        raise NotFound(f"The file {dataset.path} of dataset {dataset.name!r} is missing from the data root.")
    if fmt is None:
        return _chunks(path)
    return (
        (json.dumps(records.convert(row, fmt), ensure_ascii=False) + "\n").encode("utf-8")
        for row in storage.iter_rows(path)
    )


def _chunks(path, size: int = 1 << 16) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def generation_job_list(*, state: str | None = None, dataset: str | None = None) -> QuerySet[GenerationJob]:
    jobs = GenerationJob.objects.select_related("dataset")
    if state:
        jobs = jobs.filter(state=state)
    if dataset:
        jobs = jobs.filter(dataset__name=dataset)
    return jobs


def generation_job_active_list() -> QuerySet[GenerationJob]:
    """Queued and running jobs, oldest first: the order they were asked for."""
    return (
        GenerationJob.objects.select_related("dataset")
        .exclude(state__in=GenerationJob.TERMINAL_STATES)
        .order_by("created_at", "id")
    )


def generation_job_get(*, job_id: str) -> GenerationJob:
    try:
        return GenerationJob.objects.select_related("dataset").get(job_id=job_id)
    except GenerationJob.DoesNotExist:
        raise NotFound(f"No generation job {job_id!r}.", field="job_id") from None


def generation_job_pending_ids() -> list[str]:
    """Jobs whose streams the worker still has to follow."""
    return list(
        GenerationJob.objects.exclude(state__in=GenerationJob.TERMINAL_STATES).values_list(
            "job_id", flat=True
        )
    )


def job_event_list(*, job: GenerationJob, after_seq: int = 0, limit: int | None = None) -> list[JobEvent]:
    events = job.events.filter(seq__gt=after_seq).order_by("seq")
    return list(events[:limit] if limit else events)
