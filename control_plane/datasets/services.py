"""Writes: generate, upload, cancel, resume, and recording the events the worker receives.

Order matters for "nothing half-written": every gRPC call happens before the DB
rows it implies are created, so a service that is down or says no leaves the
DB untouched. Endpoint tokens pass through to the service and are never stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from control_plane.core import limits
from control_plane.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SynthtuneError,
)
from control_plane.core.events import EventRecord
from control_plane.datasets import storage
from control_plane.datasets.datagen import curate_request, datagen_client, job_snapshot, start_request
from control_plane.datasets.generation import CurateParams, Filters, GenerationParams
from control_plane.datasets.models import Dataset, GenerationJob, JobEvent
from synthtune import records
from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.files import atomic_write_bytes
from synthtune.paths import validate_name

logger = logging.getLogger(__name__)


def _ensure_name_free(name: str) -> None:
    if name.endswith(storage.METADATA_STEM):
        raise InvalidArgument(
            f"A dataset name must not end in {storage.METADATA_STEM!r}: datasets/<name>.meta.jsonl "
            "holds a dataset's row metadata.",
            field="name",
        )
    if Dataset.objects.filter(name=name).exists():
        raise AlreadyExists(f"A dataset named {name!r} already exists; pick another name.", field="name")
    if relpath := storage.name_taken_on_disk(name):
        raise AlreadyExists(
            f"{relpath} already exists in the data root (not recorded here); pick another name.", field="name"
        )


# --- generation -----------------------------------------------------------------


def dataset_generate(
    *, owner: AbstractBaseUser | None, params: GenerationParams, token: str, judge_token: str = ""
) -> GenerationJob:
    """Start a generation job on the datagen service and record it with its dataset.

    `token` is the teacher endpoint's, `judge_token` the judge's (filters.judge); neither is
    stored. Raises AlreadyExists for a taken name, InvalidArgument for an unknown evaluation
    set, and the service's errors (InvalidArgument, Unavailable...) before anything is written."""
    _ensure_name_free(params.name)
    eval_paths = _eval_paths(params.filters)
    request = start_request(params, token=token, judge_token=judge_token, eval_paths=eval_paths)
    recorded = params.as_json()
    return _start_job(request, name=params.name, owner=owner, dataset_fields=lambda: {"params": recorded})


def dataset_curate(
    *, owner: AbstractBaseUser | None, parent: Dataset, params: CurateParams, judge_token: str = ""
) -> GenerationJob:
    """Filter dataset `parent` into a new version of it (a CURATE job on the datagen service: no
    teacher), named params.name or else the parent's next version name. The new dataset records
    the filters, without the judge's token, as its params.

    Raises InvalidArgument unless `parent` is ready (field "parent") or for an unknown
    evaluation set, AlreadyExists for a taken name, and the service's errors."""
    from control_plane.datasets.versions import version_child_fields, version_default_name

    if parent.status != Dataset.Status.READY:  # checked again (as the version is made) after the call
        raise InvalidArgument(
            f"Dataset {parent.name!r} is {parent.status}; only a ready dataset can be curated (wait for its "
            "job to finish, or resume it).",
            field="parent",
        )
    if not params.name:
        params = dataclasses.replace(params, name=version_default_name(parent=parent))
    _ensure_name_free(params.name)
    eval_paths = _eval_paths(params.filters)
    request = curate_request(params, source_path=parent.path, judge_token=judge_token, eval_paths=eval_paths)
    recorded = params.as_json()  # the filters without the judge's token
    return _start_job(
        request,
        name=params.name,
        owner=owner,
        # The rows are the parent's (a subset of them), so the version keeps its source.
        dataset_fields=lambda: {
            **version_child_fields(parent=parent, op="curate", params=recorded),
            "params": {**recorded, "source": parent.name},
            "source": parent.source,
        },
    )


def _start_job(
    request: pb.StartGenerationRequest,
    *,
    name: str,
    owner: AbstractBaseUser | None,
    dataset_fields: Callable[[], dict[str, Any]],
) -> GenerationJob:
    """Start `request` on the datagen service, then record its dataset (with the fields
    `dataset_fields()` gives, inside the transaction) and the job."""
    reply = datagen_client().call("StartGeneration", request)
    snapshot = job_snapshot(reply.job)
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                **{
                    "source": Dataset.Source.GENERATED,
                    "format": Dataset.Format.INSTRUCTION,
                    **dataset_fields(),
                    "name": name,
                    "path": snapshot.dataset_path or storage.dataset_relpath(name),
                    "status": Dataset.Status.GENERATING,
                    "owner": owner,
                }
            )
            job = GenerationJob.objects.create(
                job_id=snapshot.job_id,
                dataset=dataset,
                state=snapshot.state,
                target_rows=snapshot.target_rows,
                metadata_path=snapshot.metadata_path,
            )
    except IntegrityError as exc:
        # Another request took the name (or the version number) between our check and now: don't
        # leave an orphan job running.
        _cancel_quietly(snapshot.job_id)
        if not Dataset.objects.filter(name=name).exists():
            raise AlreadyExists(
                "Another version of this dataset was made at the same moment; try again.", field="name"
            ) from exc
        raise AlreadyExists(
            f"A dataset named {name!r} already exists; pick another name.", field="name"
        ) from exc
    logger.info("generation started", extra={"job_id": job.job_id, "dataset": dataset.name})
    return job


def _eval_paths(filters: Filters) -> list[str]:
    """The files of the decontamination sets, datasets first: ready datasets by name, and
    adapters' held-out eval splits (adapters/<name>/eval.jsonl, written at export)."""
    from control_plane.datasets.versions import dataset_version_get
    from control_plane.runs.models import Adapter

    decontam = filters.decontam
    if decontam is None:
        return []
    paths = []
    field = "filters.decontam.eval_datasets"
    for name in decontam.eval_datasets:
        dataset = dataset_version_get(ref=name, field=field)  # NotFound for an unknown one
        if dataset.status != Dataset.Status.READY:
            raise InvalidArgument(
                f"{field} names {name!r}, which is {dataset.status}; only ready datasets can be evaluation sets.",
                field=field,
            )
        paths.append(dataset.path)
    field = "filters.decontam.eval_adapters"
    adapters = {a.name: a for a in Adapter.objects.filter(name__in=decontam.eval_adapters)}
    for name in decontam.eval_adapters:
        adapter = adapters.get(name)
        if adapter is None:
            raise NotFound(
                f"{field} names {name!r}, but there is no adapter by that name; list them at /api/v1/adapters/.",
                field=field,
            )
        split = (adapter.manifest or {}).get("eval_split") or {}
        if not split.get("file"):
            raise InvalidArgument(
                f"{field} names {name!r}, whose run held out no eval split; name its evaluation dataset "
                "in filters.decontam.eval_datasets instead.",
                field=field,
            )
        paths.append(f"{adapter.path.rstrip('/')}/{split['file']}")
    return paths


def _cancel_quietly(job_id: str) -> None:
    try:
        datagen_client().call("CancelGeneration", pb.CancelGenerationRequest(job_id=job_id))
    except SynthtuneError:
        logger.warning("could not cancel orphan job", extra={"job_id": job_id})


def generation_cancel(*, job: GenerationJob) -> GenerationJob:
    """Ask the service to cancel. The job's state then follows from its events (the worker)."""
    if job.is_finished:
        raise FailedPrecondition(f"Job {job.job_id} is already {job.state}; there is nothing to cancel.")
    datagen_client().call("CancelGeneration", pb.CancelGenerationRequest(job_id=job.job_id))
    logger.info("generation cancel requested", extra={"job_id": job.job_id})
    return job


def generation_resume(*, job: GenerationJob, token: str, judge_token: str = "") -> GenerationJob:
    """Continue a cancelled or failed job up to its target, keeping its rows. The tokens (the
    teacher's, and the judge's when the job has one) are needed again: they were never stored."""
    if job.state not in (GenerationJob.State.CANCELLED, GenerationJob.State.FAILED):
        raise FailedPrecondition(
            f"Job {job.job_id} is {job.state}; only cancelled or failed jobs can be resumed."
        )
    reply = datagen_client().call(
        "ResumeGeneration",
        pb.ResumeGenerationRequest(job_id=job.job_id, token=token, judge_token=judge_token),
    )
    snapshot = job_snapshot(reply.job)
    with transaction.atomic():
        # Unfinished again, so the worker follows its stream from last_seq.
        job.state = (
            snapshot.state
            if snapshot.state not in GenerationJob.TERMINAL_STATES
            else GenerationJob.State.QUEUED
        )
        job.error = ""
        job.finished_at = None
        job.save(update_fields=["state", "error", "finished_at", "updated_at"])
        Dataset.objects.filter(pk=job.dataset_id).update(status=Dataset.Status.GENERATING, error="")
    job.dataset.refresh_from_db()
    logger.info("generation resumed", extra={"job_id": job.job_id})
    return job


# --- events from the worker ------------------------------------------------------

_DATASET_STATUS = {
    GenerationJob.State.QUEUED: Dataset.Status.GENERATING,
    GenerationJob.State.RUNNING: Dataset.Status.GENERATING,
    GenerationJob.State.FAILED: Dataset.Status.FAILED,
    GenerationJob.State.CANCELLED: Dataset.Status.CANCELLED,
}


def _inspect_written(relpath: str) -> dict[str, Any]:
    """Check the final file the service reports, outside any transaction (it may be large)."""
    try:
        path = storage.absolute(relpath)
        with path.open("rb") as handle:
            report = records.validate_lines(handle)
    except (OSError, SynthtuneError) as exc:
        return {
            "error": f"{relpath} is not readable under the control plane's SYNTHTUNE_DATA_ROOT "
            f"(is it the same volume as the datagen service's?): {exc}"
        }
    if report.errors:
        first = report.errors[0]
        return {"error": f"{relpath} has bad lines, e.g. line {first.line}: {first.message}"}
    return {"format": report.format or Dataset.Format.INSTRUCTION, "rows": report.rows}


def generation_event_record(*, job_id: str, event: EventRecord) -> bool:
    """Store one stream event and apply it to the job and its dataset, atomically.

    Events at or below the job's last_seq are ignored, so replays are harmless.
    Returns whether the event was new."""
    inspected = _inspect_written(event.payload["dataset_path"]) if event.type == "dataset_written" else {}
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().select_related("dataset").get(job_id=job_id)
        if event.seq <= job.last_seq:
            return False
        JobEvent.objects.create(
            job=job, seq=event.seq, type=event.type, payload=event.payload, time=event.time
        )
        dataset = job.dataset
        payload = event.payload
        if event.type == "state_changed":
            job.state, job.error = payload["state"], payload["error"]
            job.finished_at = event.time if job.is_finished else None
            if job.state in _DATASET_STATUS and dataset.status != Dataset.Status.READY:
                dataset.status, dataset.error = _DATASET_STATUS[job.state], payload["error"]
        elif event.type == "progress":
            job.kept, job.dropped, job.failed = payload["kept"], payload["dropped"], payload["failed"]
            job.target_rows = payload["target_rows"] or job.target_rows
            job.prompt_tokens, job.completion_tokens = payload["prompt_tokens"], payload["completion_tokens"]
            # Events stored before the filters existed have no judge usage or report.
            job.judge_prompt_tokens = payload.get("judge_prompt_tokens", job.judge_prompt_tokens)
            job.judge_completion_tokens = payload.get("judge_completion_tokens", job.judge_completion_tokens)
            job.report = payload.get("report", job.report)
            dataset.rows = payload["kept"]
        elif event.type == "dataset_written":
            job.kept, job.dropped, job.failed = payload["kept"], payload["dropped"], payload["failed"]
            job.report = payload.get("report", job.report)
            job.metadata_path = payload.get("metadata_path") or job.metadata_path
            dataset.path, dataset.sha256 = payload["dataset_path"], payload["sha256"]
            dataset.size_bytes, dataset.rows = payload["size_bytes"], inspected.get("rows", payload["kept"])
            if "error" in inspected:
                dataset.status, dataset.error = Dataset.Status.FAILED, inspected["error"]
            else:
                dataset.status, dataset.error, dataset.format = Dataset.Status.READY, "", inspected["format"]
        job.last_seq = event.seq
        job.save()
        dataset.save()
    if event.type == "state_changed" and job.is_finished:
        logger.info("generation finished", extra={"job_id": job_id, "state": job.state, "kept": job.kept})
    return True


def generation_job_fail(*, job_id: str, reason: str) -> None:
    """Mark a job failed when its service can no longer report on it (e.g. it forgot the job)."""
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().select_related("dataset").get(job_id=job_id)
        if job.is_finished:
            return
        job.state, job.error = GenerationJob.State.FAILED, reason
        job.save(update_fields=["state", "error", "updated_at"])
        Dataset.objects.filter(pk=job.dataset_id).update(status=Dataset.Status.FAILED, error=reason)
    logger.warning("generation marked failed", extra={"job_id": job_id, "reason": reason})


# --- upload ----------------------------------------------------------------------


def dataset_upload(*, owner: AbstractBaseUser | None, name: str, data: bytes, filename: str = "") -> Dataset:
    """Validate a JSONL upload (either format) and store it under datasets/<name>.jsonl.
    `filename`, the client's name for the file, is kept in the dataset's operation.

    Raises InvalidArgument naming bad lines by number, AlreadyExists for a taken name.
    The file is written atomically, inside the transaction that records it."""
    validate_name(name, field="name")
    content, report = jsonl_validate(data=data)
    _ensure_name_free(name)
    relpath = storage.dataset_relpath(name)
    path = storage.absolute(relpath)
    written = False
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                name=name,
                path=relpath,
                rows=report.rows,
                sha256=hashlib.sha256(content).hexdigest(),
                size_bytes=len(content),
                format=report.format,
                source=Dataset.Source.UPLOADED,
                status=Dataset.Status.READY,
                owner=owner,
                operation={"op": "upload", "params": {"filename": filename} if filename else {}},
            )
            atomic_write_bytes(path, content)
            written = True
    except IntegrityError:
        raise AlreadyExists(
            f"A dataset named {name!r} already exists; pick another name.", field="name"
        ) from None
    except BaseException:
        if written:  # the commit failed after the file landed: don't leave an unrecorded file
            path.unlink(missing_ok=True)
        raise
    logger.info("dataset uploaded", extra={"dataset": name, "rows": report.rows})
    return dataset


def dataset_delete(*, dataset: Dataset) -> None:
    """Delete a dataset and its files. Refused (FailedPrecondition) while it is being generated,
    and while runs or later versions refer to it: their records must keep naming real data.
    The files go only once the row's deletion has committed."""
    if dataset.status == Dataset.Status.GENERATING:
        raise FailedPrecondition(f"Dataset {dataset.name!r} is being generated; cancel its job first.")
    users = sorted({run.run_id for run in dataset.runs.all()} | {run.run_id for run in dataset.eval_runs.all()})
    if users:
        raise FailedPrecondition(
            f"Dataset {dataset.name!r} is the data of run(s) {', '.join(users[:5])}; it stays for their record."
        )
    children = list(dataset.children.values_list("name", flat=True)[:5])
    if children:
        raise FailedPrecondition(
            f"Dataset {dataset.name!r} has later versions ({', '.join(children)}); delete those first."
        )
    files = [storage.absolute(dataset.path), storage.absolute(storage.metadata_relpath(dataset.path))]
    with transaction.atomic():
        dataset.delete()
        transaction.on_commit(lambda: [path.unlink(missing_ok=True) for path in files])
    logger.info("dataset deleted", extra={"dataset": dataset.name})


def jsonl_validate(*, data: bytes, field: str = "file") -> tuple[bytes, records.ValidationReport]:
    """An upload's bytes checked (size limit, UTF-8, every line a valid row) and normalised
    (no byte-order mark). Raises PayloadTooLarge past SYNTHTUNE_UPLOAD_MAX_BYTES, InvalidArgument
    naming `field` and bad lines by number."""
    if len(data) > settings.SYNTHTUNE_UPLOAD_MAX_BYTES:
        raise limits.file_too_large(field=field, size=len(data))
    try:
        text = data.decode("utf-8-sig")  # tolerate a byte-order mark, store without it
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"{field} is not UTF-8 text (bad byte at offset {exc.start}).", field=field
        ) from None
    report = records.require_valid(text.splitlines(), field_name=field)
    return text.encode("utf-8"), report


# JSON text can hold these raw in a string; JSONL must not (str.splitlines() breaks there).
_LINE_BREAKS_IN_STRINGS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def jsonl_from_rows(rows: Iterable[Any]) -> bytes:
    """Rows given as JSON values (the API's `rows` field) as JSONL bytes, one row a line. U+0085,
    U+2028 and U+2029 are escaped (as JSON allows): left raw, str.splitlines(), which the
    readers of a dataset use, would end a line inside a string."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return text.translate(_LINE_BREAKS_IN_STRINGS).encode("utf-8")
