"""synthtune's records in OpenAI's object shapes, and the ids that name them.

Ids are the synthtune names with OpenAI's prefixes, so each maps back without a table:
a dataset `support-3fa9c2` is the file `file-support-3fa9c2`, a run `r-1a2b` is the job
`ftjob-r-1a2b`, its event 7 is `ftevent-r-1a2b-7`, its eval at step 40 is `ftckpt-r-1a2b-40`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from control_plane.core.errors import NotFound
from control_plane.datasets.models import Dataset
from control_plane.runs.models import Run, RunEvent

FILE_PREFIX = "file-"
JOB_PREFIX = "ftjob-"
EVENT_PREFIX = "ftevent-"
CHECKPOINT_PREFIX = "ftckpt-"
ORGANIZATION = "synthtune"
# The trainer's default learning rate: learning_rate_multiplier scales it (1.0 and "auto": as is).
BASE_LEARNING_RATE = 2e-4
DEFAULT_SEED = 42  # the trainer's

FILE_STATUS = {
    Dataset.Status.READY: "processed",
    Dataset.Status.GENERATING: "uploaded",
    Dataset.Status.FAILED: "error",
    Dataset.Status.CANCELLED: "error",
}


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def unprefixed(value: str, prefix: str, what: str) -> str:
    if not value.startswith(prefix) or len(value) == len(prefix):
        raise NotFound(f"No {what} {value!r}: {what} ids start with {prefix!r}.")
    return value[len(prefix):]


# --- files (datasets) ---------------------------------------------------------------------------


def file_id(dataset: Dataset) -> str:
    return f"{FILE_PREFIX}{dataset.name}"


def file_object(dataset: Dataset) -> dict[str, Any]:
    filename = (dataset.operation.get("params") or {}).get("filename") or f"{dataset.name}.jsonl"
    return {
        "id": file_id(dataset),
        "object": "file",
        "bytes": dataset.size_bytes,
        "created_at": unix(dataset.created_at),
        "filename": filename,
        "purpose": "fine-tune",
        "status": FILE_STATUS.get(dataset.status, "error"),
        "expires_at": None,
        "status_details": dataset.error or None,
    }


# --- fine-tuning jobs (runs) --------------------------------------------------------------------


def job_id(run: Run) -> str:
    return f"{JOB_PREFIX}{run.run_id}"


def _whole(value: float | int) -> float | int:
    return int(value) if float(value).is_integer() else value


def job_hyperparameters(run: Run) -> dict[str, Any]:
    """n_epochs, batch_size and learning_rate_multiplier as the trainer resolved them, or as
    requested ("auto" where neither says) until the trainer has validated the run."""
    resolved = run.config.get("hyperparameters", {}).get("training", {})
    requested = run.hyperparameters

    def value(name: str) -> Any:
        found = resolved.get(name, requested.get(name))
        return "auto" if found is None else found

    epochs, batch, lr = value("epochs"), value("batch_size"), value("learning_rate")
    return {
        "n_epochs": epochs if epochs == "auto" else _whole(epochs),
        "batch_size": batch,
        "learning_rate_multiplier": lr if lr == "auto" else round(lr / BASE_LEARNING_RATE, 10),
    }


def _seed(run: Run) -> int:
    resolved = run.config.get("hyperparameters", {}).get("training", {})
    return int(resolved.get("seed", run.hyperparameters.get("seed", DEFAULT_SEED)))


def _first_file(datasets) -> str | None:
    first = next(iter(datasets), None)
    return file_id(first) if first else None


def job_object(run: Run) -> dict[str, Any]:
    hyperparameters = job_hyperparameters(run)
    adapter = getattr(run, "adapter", None) if run.state == Run.State.SUCCEEDED else None
    metadata = getattr(run, "openai_metadata", None)
    eta = run.metrics.get("eta_s") if run.state == Run.State.RUNNING else None
    return {
        "id": job_id(run),
        "object": "fine_tuning.job",
        "created_at": unix(run.created_at),
        "error": {"code": "job_failed", "message": run.error, "param": None}
        if run.state == Run.State.FAILED
        else None,
        "fine_tuned_model": adapter.name if adapter else None,
        "finished_at": unix(run.finished_at) if run.is_finished else None,
        "hyperparameters": hyperparameters,
        "model": run.base_model,
        "organization_id": ORGANIZATION,
        "result_files": [],
        "seed": _seed(run),
        "status": "validating_files" if run.state == Run.State.VALIDATING else run.state,
        "trained_tokens": run.metrics.get("num_tokens") if run.state == Run.State.SUCCEEDED else None,
        "training_file": _first_file(run.datasets.all()),
        "validation_file": _first_file(run.eval_datasets.all()),
        "estimated_finish": unix(run.updated_at) + int(eta) if eta else None,
        "integrations": [],
        "metadata": metadata.values if metadata else None,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        "user_provided_suffix": run.adapter_name or None,
    }


# --- events and checkpoints ---------------------------------------------------------------------

_STATE_MESSAGES = {
    "validating": "Validating training file",
    "queued": "Fine-tuning job queued",
    "running": "Fine-tuning job started",
    "succeeded": "The job has successfully completed",
    "cancelled": "The job was cancelled",
}


def event_id(event: RunEvent) -> str:
    return f"{EVENT_PREFIX}{event.run.run_id}-{event.seq}"


def _event_message(event: RunEvent) -> tuple[str, str, str]:
    """(level, message, type) of one stored run event."""
    p = event.payload
    if event.type == RunEvent.Type.STATE_CHANGED:
        if p["state"] == "failed":
            return "error", f"The job failed: {p.get('error') or 'no reason given'}", "message"
        return "info", _STATE_MESSAGES.get(p["state"], p["state"]), "message"
    if event.type == RunEvent.Type.STEP:
        return "info", f"Step {p['step']}/{p['max_steps']}: training loss={p['loss']:.4f}", "metrics"
    if event.type == RunEvent.Type.EVAL:
        return "info", f"Step {p['step']}/{p['max_steps']}: eval loss={p['eval_loss']:.4f}", "metrics"
    if event.type == RunEvent.Type.EXPORTED:
        return "info", f"New fine-tuned model created: {p['adapter_name']}", "message"
    if event.type == RunEvent.Type.RESUMED:
        return "info", f"Resumed from the checkpoint at step {p['step']}", "message"
    level = {"warning": "warn", "error": "error"}.get(p.get("level", ""), "info")
    return level, p.get("message", ""), "message"


def event_object(event: RunEvent) -> dict[str, Any]:
    level, message, kind = _event_message(event)
    data: dict[str, Any] = dict(event.payload)
    if event.type == RunEvent.Type.STEP:  # OpenAI's metrics event names
        data = {"step": event.payload["step"], "total_steps": event.payload["max_steps"],
                "train_loss": event.payload["loss"], **data}
    return {
        "id": event_id(event),
        "object": "fine_tuning.job.event",
        "created_at": unix(event.time),
        "level": level,
        "message": message,
        "data": data,
        "type": kind,
    }


def checkpoint_object(
    event: RunEvent, *, run: Run, train_loss: float | None, exported_step: int | None
) -> dict[str, Any]:
    """An eval as OpenAI's checkpoint. Only the exported one is a servable model (the adapter);
    the others name it with their step (`<adapter>:ckpt-step-N`), as OpenAI names its own."""
    p = event.payload
    adapter = getattr(run, "adapter", None)
    model = adapter.name if adapter else (run.adapter_name or run.run_id)
    servable = adapter is not None and p["step"] == exported_step
    return {
        "id": f"{CHECKPOINT_PREFIX}{run.run_id}-{p['step']}",
        "object": "fine_tuning.job.checkpoint",
        "created_at": unix(event.time),
        "fine_tuned_model_checkpoint": model if servable else f"{model}:ckpt-step-{p['step']}",
        "fine_tuning_job_id": job_id(run),
        "metrics": {
            "step": float(p["step"]),
            "train_loss": train_loss,
            "valid_loss": p.get("eval_loss"),
            "valid_mean_token_accuracy": p.get("eval_mean_token_accuracy"),
        },
        "step_number": p["step"],
    }
