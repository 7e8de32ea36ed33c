"""Writes: generate, upload, cancel, resume, and recording the events the worker receives.

Order matters for "nothing half-written": every gRPC call happens before the DB
rows it implies are created, so a service that is down or says no leaves the
DB untouched. Endpoint tokens pass through to the service and are never stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from control_plane.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, SynthtuneError
from control_plane.core.events import EventRecord
from control_plane.datasets import storage
from control_plane.datasets.datagen import datagen_client, job_snapshot, start_request
from control_plane.datasets.generation import GenerationParams
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
    *, owner: AbstractBaseUser | None, params: GenerationParams, token: str
) -> GenerationJob:
    """Start a generation job on the datagen service and record it with its dataset.

    Raises AlreadyExists for a taken name, and the service's errors (InvalidArgument,
    Unavailable...) before anything is written."""
    _ensure_name_free(params.name)
    reply = datagen_client().call("StartGeneration", start_request(params, token=token))
    snapshot = job_snapshot(reply.job)
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                name=params.name,
                path=snapshot.dataset_path or storage.dataset_relpath(params.name),
                source=Dataset.Source.GENERATED,
                status=Dataset.Status.GENERATING,
                format=Dataset.Format.INSTRUCTION,
                params=params.as_json(),
                owner=owner,
            )
            job = GenerationJob.objects.create(
                job_id=snapshot.job_id,
                dataset=dataset,
                state=snapshot.state,
                target_rows=snapshot.target_rows,
            )
    except IntegrityError as exc:
        # Another request took the name between our check and now: don't leave an orphan job running.
        _cancel_quietly(snapshot.job_id)
        raise AlreadyExists(
            f"A dataset named {params.name!r} already exists; pick another name.", field="name"
        ) from exc
    logger.info("generation started", extra={"job_id": job.job_id, "dataset": dataset.name})
    return job


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


def generation_resume(*, job: GenerationJob, token: str) -> GenerationJob:
    """Continue a cancelled or failed job up to its target, keeping its rows. The token is
    needed again because it was never stored."""
    if job.state not in (GenerationJob.State.CANCELLED, GenerationJob.State.FAILED):
        raise FailedPrecondition(
            f"Job {job.job_id} is {job.state}; only cancelled or failed jobs can be resumed."
        )
    reply = datagen_client().call(
        "ResumeGeneration", pb.ResumeGenerationRequest(job_id=job.job_id, token=token)
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
            dataset.rows = payload["kept"]
        elif event.type == "dataset_written":
            job.kept, job.dropped, job.failed = payload["kept"], payload["dropped"], payload["failed"]
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


def dataset_upload(*, owner: AbstractBaseUser | None, name: str, data: bytes) -> Dataset:
    """Validate a JSONL upload (either format) and store it under datasets/<name>.jsonl.

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


def jsonl_validate(*, data: bytes, field: str = "file") -> tuple[bytes, records.ValidationReport]:
    """An upload's bytes checked (size limit, UTF-8, every line a valid row) and normalised
    (no byte-order mark). Raises InvalidArgument naming `field` and bad lines by number."""
    limit = settings.SYNTHTUNE_UPLOAD_MAX_BYTES
    if len(data) > limit:
        raise InvalidArgument(f"{field} is {len(data)} bytes; the limit is {limit}.", field=field)
    try:
        text = data.decode("utf-8-sig")  # tolerate a byte-order mark, store without it
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"{field} is not UTF-8 text (bad byte at offset {exc.start}).", field=field
        ) from None
    report = records.require_valid(text.splitlines(), field_name=field)
    return text.encode("utf-8"), report


def jsonl_from_rows(rows: Iterable[Any]) -> bytes:
    """Rows given as JSON values (the API's `rows` field) as JSONL bytes, one row a line."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
