"""Writes: start and cancel runs, and record what the worker receives from the trainer.

Order matters for "nothing half-written": the StartRun call happens before the
rows it implies are created, so a trainer that is down or says no leaves the DB
untouched; if recording fails after the trainer accepted, the run is cancelled
there so no orphan trains unseen.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from control_plane.core.errors import FailedPrecondition, InvalidArgument, NotFound, SynthtuneError
from control_plane.core.events import EventRecord
from control_plane.datasets import storage
from control_plane.datasets.models import Dataset
from control_plane.runs.models import Adapter, Run, RunEvent
from control_plane.runs.params import RunParams
from control_plane.runs.trainer import (
    START_TIMEOUT_S,
    RunSnapshot,
    run_snapshot,
    start_request,
    trainer_client,
)
from synthtune.trainer.v1 import trainer_pb2 as pb

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# An eval event's metrics copied onto the run (the latest of each).
EVAL_METRICS = ("eval_loss", "eval_mean_token_accuracy", "eval_exact_match", "eval_chrf", "eval_judge_score")


def _training_datasets(names: list[str], *, field: str = "datasets") -> list[Dataset]:
    """The named datasets in request order; each must be ready, non-empty and on disk.
    Errors name `field` ("eval_datasets" for the datasets a run evaluates on)."""
    use = "evaluated on" if field == "eval_datasets" else "trained on"
    found = {dataset.name: dataset for dataset in Dataset.objects.filter(name__in=names)}
    datasets = []
    for name in names:
        dataset = found.get(name)
        if dataset is None:
            raise NotFound(f"No dataset named {name!r}.", field=field)
        if dataset.status != Dataset.Status.READY:
            raise InvalidArgument(
                f"Dataset {name!r} is {dataset.status}; only ready datasets can be {use}.",
                field=field,
            )
        if dataset.rows == 0:
            raise InvalidArgument(f"Dataset {name!r} is empty: it has no rows to be {use}.", field=field)
        if not storage.absolute(dataset.path).is_file():
            raise InvalidArgument(
                f"The file {dataset.path} of dataset {name!r} is missing from the data root.",
                field=field,
            )
        datasets.append(dataset)
    return datasets


def _refs(datasets: list[Dataset]) -> list[dict[str, Any]] | None:
    """The exact versions behind `datasets` (None when one predates versions: paths only)."""
    return [{"path": d.path, **d.ref} for d in datasets] if all(d.sha256 for d in datasets) else None


def run_start(*, owner: AbstractBaseUser | None, params: RunParams) -> Run:
    """Start a fine-tuning run on the trainer service and record it.

    Raises InvalidArgument naming the field (ours: unknown, unready or empty datasets;
    the trainer's: model limits, LoRA targets, token lengths...) and Unavailable when
    the trainer can't be reached, before anything is written. `params.eval_datasets`, when
    given, are the run's eval split (checked like `datasets`; errors name eval_datasets)."""
    datasets = _training_datasets(params.datasets)
    eval_datasets = _training_datasets(params.eval_datasets, field="eval_datasets")
    if not params.adapter_name and settings.SYNTHTUNE_DEFAULT_ADAPTER_NAME:
        # SYNTHTUNE_DEFAULT_ADAPTER_NAME (the old app's DEFAULT_ADAPTER_NAME): one stable stem.
        params = replace(params, adapter_name=settings.SYNTHTUNE_DEFAULT_ADAPTER_NAME)
    # The exact versions: the trainer refuses a file that is no longer one, and its manifest names them.
    request = start_request(
        params,
        dataset_paths=[dataset.path for dataset in datasets],
        dataset_refs=_refs(datasets),
        eval_dataset_paths=[dataset.path for dataset in eval_datasets],
        eval_dataset_refs=_refs(eval_datasets),
    )
    reply = trainer_client().call("StartRun", request, timeout_s=START_TIMEOUT_S)
    snapshot = _named_reports(run_snapshot(reply.run), datasets + eval_datasets)
    try:
        with transaction.atomic():
            run = Run.objects.create(
                run_id=snapshot.run_id,
                base_model=snapshot.base_model or params.base_model,
                hyperparameters=params.hyperparameters,
                adapter_name=params.adapter_name,
                merge_full_model=params.merge_full_model,
                owner=owner,
                **_snapshot_fields(snapshot, state=True),
            )
            run.datasets.set(datasets)
            run.eval_datasets.set(eval_datasets)
    except BaseException:
        _cancel_quietly(snapshot.run_id)
        raise
    logger.info("run started", extra={"run_id": run.run_id, "base_model": run.base_model})
    return run


def _named_reports(snapshot: RunSnapshot, datasets: list[Dataset]) -> RunSnapshot:
    """The trainer's dataset reports, each naming its version (name, version, sha256): a trainer
    that predates versions reports paths only, and the run record must still say which versions."""
    by_path = {dataset.path: dataset for dataset in datasets}

    def named(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for report in reports:
            dataset = by_path.get(report["path"])
            if dataset is not None and "name" not in report:
                report = {**report, "name": dataset.name, "version": dataset.version}
            out.append(report)
        return out

    return replace(snapshot, datasets=named(snapshot.datasets), eval_datasets=named(snapshot.eval_datasets))


def _snapshot_fields(snapshot: RunSnapshot, *, state: bool) -> dict[str, Any]:
    """Run fields from a service reply. `state` only at creation: afterwards the state follows
    the stored events, so it never runs ahead of (or behind) the event log."""
    fields: dict[str, Any] = {
        "config": snapshot.config,
        "dataset_reports": snapshot.datasets,
        "eval_dataset_reports": snapshot.eval_datasets,
        "prompt_format": snapshot.prompt_format,
        "queue_position": snapshot.queue_position,
        "train_rows": snapshot.train_rows,
        "eval_rows": snapshot.eval_rows,
        "truncated_rows": snapshot.truncated_rows,
        "resumed_from_step": snapshot.resumed_from_step,
        "resumes": snapshot.resumes,
    }
    if state:
        fields.update(
            state=snapshot.state,
            error=snapshot.error,
            step=snapshot.step,
            max_steps=snapshot.max_steps,
            epoch=snapshot.epoch,
        )
    return fields


def _cancel_quietly(run_id: str) -> None:
    try:
        trainer_client().call("CancelRun", pb.CancelRunRequest(run_id=run_id))
    except SynthtuneError:
        logger.warning("could not cancel orphan run", extra={"run_id": run_id})


def run_cancel(*, run: Run) -> Run:
    """Ask the trainer to cancel: a queued run stops at once, a running one within a step.
    The state then follows from the run's events (the worker)."""
    if run.is_finished:
        raise FailedPrecondition(f"Run {run.run_id} is already {run.state}; there is nothing to cancel.")
    trainer_client().call("CancelRun", pb.CancelRunRequest(run_id=run.run_id))
    logger.info("run cancel requested", extra={"run_id": run.run_id})
    return run


def run_resume(*, run: Run) -> Run:
    """Ask the trainer to resume a failed run: it goes on from its newest checkpoint, or starts
    over without one. The run is queued again and the worker follows it from its last event."""
    if run.state != Run.State.FAILED:
        raise FailedPrecondition(f"Run {run.run_id} is {run.state}; only a failed run can be resumed.")
    trainer_client().call("ResumeRun", pb.ResumeRunRequest(run_id=run.run_id))
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        # The events (state_changed queued, then running) follow through the worker; until then
        # the run must not look finished, or the worker would not follow it again.
        if run.is_finished:
            run.state, run.error, run.finished_at = Run.State.QUEUED, "", None
            run.save(update_fields=["state", "error", "finished_at", "updated_at"])
    logger.info("run resume requested", extra={"run_id": run.run_id})
    return run


def run_refresh(*, run_id: str) -> Run:
    """Copy what only GetRun carries (resolved config, dataset reports, final metrics, queue
    position) onto the run. Raises the service's errors."""
    snapshot = run_snapshot(trainer_client().call("GetRun", pb.GetRunRequest(run_id=run_id)).run)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(run_id=run_id)
        snapshot = _named_reports(snapshot, [*run.datasets.all(), *run.eval_datasets.all()])
        for name, value in _snapshot_fields(snapshot, state=False).items():
            if value or name in ("queue_position", "truncated_rows"):
                setattr(run, name, value)
        if snapshot.metrics:
            run.metrics = {**run.metrics, **snapshot.metrics}
        run.save()
    return run


# --- events from the worker ------------------------------------------------------


def _read_manifest(relpath: str) -> dict[str, Any]:
    """The exported adapter's manifest, read outside any transaction; {"error": ...} if unreadable."""
    try:
        path = storage.absolute(f"{relpath.rstrip('/')}/{MANIFEST}")
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, SynthtuneError) as exc:
        return {
            "error": f"{relpath}/{MANIFEST} is not readable under the control plane's SYNTHTUNE_DATA_ROOT "
            f"(is it the same volume as the trainer's?): {exc}"
        }
    if not isinstance(manifest, dict):
        return {"error": f"{relpath}/{MANIFEST} is not a JSON object."}
    return {"manifest": manifest}


def _manifest_base_model(manifest: dict[str, Any]) -> str:
    base = manifest.get("base_model")
    if isinstance(base, dict):
        return str(base.get("id") or "")
    return str(base or "")


def _record_adapter(run: Run, payload: dict[str, Any], read: dict[str, Any]) -> None:
    manifest = read.get("manifest", {})
    if "error" in read:
        logger.warning("adapter manifest unreadable", extra={"run_id": run.run_id, "reason": read["error"]})
    elif manifest.get("weights_sha256") not in (None, payload["weights_sha256"]):
        logger.warning(
            "adapter weights checksum differs between the event and the manifest",
            extra={"run_id": run.run_id},
        )
    Adapter.objects.update_or_create(
        name=payload["adapter_name"] or payload["adapter_path"].rsplit("/", 1)[-1],
        defaults={
            "path": payload["adapter_path"],
            "run": run,
            "base_model": _manifest_base_model(manifest) or run.base_model,
            "prompt_format": str(manifest.get("prompt_format") or run.prompt_format),
            "weights_sha256": payload["weights_sha256"],
            "merged_model_path": payload["merged_model_path"],
            "manifest": manifest,
        },
    )
    if isinstance(manifest.get("metrics"), dict):
        run.metrics = {**run.metrics, **manifest["metrics"]}
    if manifest.get("prompt_format"):
        run.prompt_format = str(manifest["prompt_format"])


def run_event_record(*, run_id: str, event: EventRecord) -> bool:
    """Store one stream event and apply it to the run (and on `exported`, record the
    adapter from its manifest), atomically.

    Events at or below the run's last_seq are ignored, so replays are harmless.
    Returns whether the event was new."""
    read = _read_manifest(event.payload["adapter_path"]) if event.type == "exported" else {}
    with transaction.atomic():
        run = Run.objects.select_for_update().get(run_id=run_id)
        if event.seq <= run.last_seq:
            return False
        RunEvent.objects.create(
            run=run, seq=event.seq, type=event.type, payload=event.payload, time=event.time
        )
        payload = event.payload
        if event.type == "state_changed":
            run.state, run.error = payload["state"], payload["error"]
            if run.state == Run.State.RUNNING and run.started_at is None:
                run.started_at = event.time
            if run.state != Run.State.QUEUED:
                run.queue_position = 0
            run.finished_at = event.time if run.is_finished else None
        elif event.type == "step":
            run.step, run.max_steps, run.epoch = payload["step"], payload["max_steps"], payload["epoch"]
            run.metrics = {
                **run.metrics,
                **{
                    key: payload[key]
                    for key in ("loss", "learning_rate", "grad_norm", "tokens_per_s", "eta_s")
                },
            }
        elif event.type == "eval":
            run.epoch = max(run.epoch, payload["epoch"])
            latest = {k: payload[k] for k in EVAL_METRICS if payload.get(k) is not None}
            run.metrics = {**run.metrics, **latest}
        elif event.type == "exported":
            _record_adapter(run, payload, read)
        elif event.type == "resumed":
            run.resumed_from_step, run.resumes = payload["step"], payload["resumes"]
        run.last_seq = event.seq
        run.save()
    if event.type == "state_changed" and run.is_finished:
        logger.info("run finished", extra={"run_id": run_id, "state": run.state, "step": run.step})
    return True


def run_fail(*, run_id: str, reason: str) -> None:
    """Mark a run failed when the trainer can no longer report on it (it forgot the run)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(run_id=run_id)
        if run.is_finished:
            return
        run.state, run.error, run.finished_at = Run.State.FAILED, reason, timezone.now()
        run.save(update_fields=["state", "error", "finished_at", "updated_at"])
    logger.warning("run marked failed", extra={"run_id": run_id, "reason": reason})
