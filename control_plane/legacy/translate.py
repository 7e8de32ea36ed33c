"""The old Flask app's vocabulary on synthtune's records: its envelopes, statuses and names.

Views parse the old request fields, call the same services and selectors as /api/v1, and
use these to answer as the old app did. Nothing here writes; lookups go through selectors.
"""

from __future__ import annotations

import re
import time
from typing import Any

from django.conf import settings
from rest_framework.response import Response

from control_plane.core.errors import InvalidArgument, NotFound, SynthtuneError, Unavailable
from control_plane.core.exceptions import api_exception_handler
from control_plane.datasets import selectors as dataset_selectors
from control_plane.datasets import storage
from control_plane.datasets.models import Dataset, GenerationJob
from control_plane.deployments import proxy
from control_plane.deployments import selectors as deployment_selectors
from control_plane.deployments.models import Deployment
from control_plane.runs import selectors as run_selectors
from control_plane.runs.models import Adapter, Run
from synthtune.paths import validate_name

# How a typed error's code becomes the old app's status: it answered 400 for bad input and 502
# for anything that went wrong further on (the endpoint, vLLM, training), never 404/409/503.
# A code not listed here (one the services add later) is an upstream failure: 502.
LEGACY_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "NOT_FOUND": 400,  # an unknown file, adapter or served name is a bad field value
    "ALREADY_EXISTS": 400,
    "PAYLOAD_TOO_LARGE": 413,  # a body over the control plane's limit (the old app had none)
    "UNAVAILABLE": 502,  # a service, vLLM or the endpoint is down
    "DEADLINE_EXCEEDED": 502,
    "RESOURCE_EXHAUSTED": 502,
    "ABORTED": 502,
    "CANCELLED": 502,
    "INTERNAL": 502,  # a service failed (UpstreamError)
    "UNKNOWN": 502,
    "DATA_LOSS": 502,
    "UNIMPLEMENTED": 502,
    "UNAUTHENTICATED": 502,  # vLLM or the endpoint refused the token the caller passed on
    "PERMISSION_DENIED": 502,
}
# The caller's own token (a vLLM or endpoint key) refused upstream: the old app's 502, although
# the control plane types it INVALID_ARGUMENT (field "token") for /api/v1.
_UPSTREAM_REFUSED = ("UNAUTHENTICATED", "PERMISSION_DENIED")


def error_response(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    """The old app's failure envelope."""
    return Response({"status": "error", "message": message}, status=status, headers=headers)


def legacy_status(error: SynthtuneError) -> int:
    if error.extra.get("upstream_code") in _UPSTREAM_REFUSED:
        return 502
    return LEGACY_HTTP_STATUS.get(error.code, 502)


def _old_field_message(error: SynthtuneError, field_names: dict[str, str]) -> str:
    """The error's message, led by the old app's name of the field it names, if that differs."""
    field = str(error.extra.get("field") or "")
    old = field_names.get(field)
    if old and not error.message.startswith(old):
        return f"{old}: {error.message}"
    return error.message


def legacy_exception_handler(exc: Exception, context: dict) -> Response:
    """The one API handler's verdict, in the old envelope: {"status": "error", "message"}.

    Typed errors get the old app's statuses (LEGACY_HTTP_STATUS); DRF's own (401, 403, 405,
    a body that isn't JSON: 400) keep theirs; a bug stays a 500, logged by the API handler."""
    view = context.get("view")
    if isinstance(exc, SynthtuneError):
        field_names = getattr(view, "field_names", {})
        return error_response(_old_field_message(exc, field_names), legacy_status(exc))
    response = api_exception_handler(exc, context)
    body = response.data if isinstance(response.data, dict) else {}
    headers = {name: value for name, value in response.items() if name in ("WWW-Authenticate", "Retry-After")}
    return error_response(str(body.get("message") or "Request failed."), response.status_code, headers)


def owner_of(request):
    """The user to record as owner; None for an anonymous caller (SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS)."""
    return request.user if request.user.is_authenticated else None


# --- datasets ---------------------------------------------------------------------------------


def dataset_file_name(dataset: Dataset) -> str:
    """The name the old app listed: the file's, e.g. support.jsonl."""
    return dataset.path.rsplit("/", 1)[-1]


def training_dataset_names(selected_files: list[Any]) -> list[str]:
    """Dataset names for the old app's `selected_files`: file names from /list_datasets
    ("support.jsonl"), or dataset names. Anything else is the old app's 400."""
    names = []
    for entry in selected_files:
        text = entry.strip() if isinstance(entry, str) else ""
        try:
            validate_name(text, field="selected_files")  # no '/', '\\', '..', absolute path
            dataset = _dataset_for_file(text)
        except SynthtuneError:
            dataset = None
        if dataset is None:
            raise InvalidArgument(f"File not found or invalid: {str(entry)[:200]}", field="selected_files")
        names.append(dataset.name)
    return names


def _dataset_for_file(name: str) -> Dataset | None:
    if name.endswith(".jsonl"):
        by_path = dataset_selectors.dataset_list().filter(path=f"{storage.DATASETS_DIR}/{name}").first()
        if by_path is not None:
            return by_path
    try:
        return dataset_selectors.dataset_get(name=name)
    except NotFound:
        return None


def generation_finished(*, job_id: str, wait_s: float, poll_s: float = 0.1) -> GenerationJob | None:
    """The job once the worker has recorded its end, or None after `wait_s` (it keeps running)."""
    deadline = time.monotonic() + wait_s
    while True:
        job = dataset_selectors.generation_job_get(job_id=job_id)
        if job.is_finished:
            return job
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


def generation_meta(job: GenerationJob) -> dict[str, Any]:
    """The old /generate_data `meta` for a finished job: the old app's `file_name`, `file_path`
    and `num_rows` (a string, as it sent it: its page shows them), then synthtune's own counts."""
    dataset = job.dataset
    return {
        "file_name": dataset_file_name(dataset),
        "file_path": str(storage.absolute(dataset.path)),
        "num_rows": str(dataset.rows),
        "dataset": dataset.name,
        "rows_requested": job.target_rows,
        "rows_written": dataset.rows,
        "dropped": job.dropped,
        "failed": job.failed,
        "size_bytes": dataset.size_bytes,
        "sha256": dataset.sha256,
        "job_id": job.job_id,
    }


# --- runs ------------------------------------------------------------------------------------

# The old app's job states: queued, running, done, error (it had no cancel: a cancelled run is
# an error, so an old client's poll still ends).
_RUN_STATUS = {
    Run.State.VALIDATING: "queued",
    Run.State.QUEUED: "queued",
    Run.State.RUNNING: "running",
    Run.State.SUCCEEDED: "done",
    Run.State.FAILED: "error",
    Run.State.CANCELLED: "error",
}


def _progress(run: Run) -> str:
    """The old app's `progress`: one line for people, e.g. "Training: step 3/12 (25%), loss 1.23"."""
    if run.state == Run.State.VALIDATING:
        return "Validating datasets…"
    if run.state == Run.State.QUEUED:
        return f"Queued (position {run.queue_position})." if run.queue_position else "Queued."
    if run.state == Run.State.RUNNING:
        if not run.max_steps:
            return "Loading the base model…"
        loss = run.metrics.get("loss")
        text = f"Training: step {run.step}/{run.max_steps} ({run.percent}%)"
        return f"{text}, loss {loss:.4g}" if isinstance(loss, (int, float)) else text
    if run.state == Run.State.SUCCEEDED:
        return "Training complete."
    if run.state == Run.State.CANCELLED:
        return "Cancelled."
    return "Training failed."


def run_status(run: Run) -> dict[str, Any]:
    """The old /finetune_status answer for `run` (plus `percent`, which the old app lacked)."""
    adapter = getattr(run, "adapter", None)
    error = run.error or ("Cancelled." if run.state == Run.State.CANCELLED else "")
    return {
        "status": _RUN_STATUS.get(run.state, "queued"),
        "progress": _progress(run),
        "percent": run.percent,
        "error": error or None,
        "adapter_dir": str(storage.absolute(adapter.path)) if adapter else None,
        "output_dir": str(storage.absolute(f"runs/{run.run_id}")),
        "base_model_id": run.base_model,
    }


def run_or_none(job_id: str) -> Run | None:
    try:
        return run_selectors.run_get(run_id=job_id)
    except NotFound:
        return None


# --- adapters and what vLLM serves ------------------------------------------------------------


def _version(name: str, stem: str) -> int | None:
    match = re.fullmatch(rf"{re.escape(stem)}-v(\d+)", name)
    return int(match.group(1)) if match else None


def newest_version(names: list[str], stem: str) -> str | None:
    """Of `names`, the highest <stem>-v<N>. The old app exported under one stable name
    (DEFAULT_ADAPTER_NAME) that always meant the latest; synthtune versions it instead."""
    versions = [(version, name) for name in names if (version := _version(name, stem)) is not None]
    return max(versions)[1] if versions else None


def exported_adapter(name: str, *, resolve) -> Adapter:
    """The adapter the old `exported_adapter` names: an adapter's name, or a stem whose newest
    version is meant. `resolve` is the deployments service's checked lookup (400 for '..')."""
    try:
        return resolve(name=name)
    except NotFound:
        candidates = list(run_selectors.adapter_list(search=name).values_list("name", flat=True))
        newest = newest_version(candidates, name)
        if newest is None:
            raise
        return resolve(name=newest)


def loaded_deployment(*, target: str, name: str) -> Deployment:
    """The loaded deployment on `target` served as `name`, or the newest of the stem `name`."""
    loaded = list(deployment_selectors.deployment_list(state=Deployment.State.LOADED, target=target))
    for deployment in loaded:
        if deployment.served_name == name:
            return deployment
    newest = newest_version([d.served_name for d in loaded], name)
    if newest is not None:
        return next(d for d in loaded if d.served_name == newest)
    served = ", ".join(sorted(d.served_name for d in loaded)) or "none"
    raise NotFound(
        f"{name!r} is not loaded on vLLM at {target} (adapters loaded there through synthtune: {served}).",
        field="adapter_name",
    )


def served_adapter(*, target: str, name: str, token: str) -> proxy.ServedModel:
    """What vLLM at `target` serves as the adapter `name` (its served name, or a stem's newest
    version), checked to be one of ours: its files under adapters/, so the manifest gives the
    prompt format. Unavailable when that vLLM can't be reached."""
    listing = next(iter(deployment_selectors.served_models(targets=[target], token=token)), None)
    if listing is None or not listing.reachable:
        error = listing.error if listing else "the serving proxy did not list it"
        raise Unavailable(f"vLLM at {target} is unreachable: {error or 'no answer'}")
    adapters = {model.id: model for model in listing.models if model.parent}
    chosen = adapters.get(name)
    if chosen is None and (newest := newest_version(list(adapters), name)):
        chosen = adapters[newest]
    if chosen is None:
        served = ", ".join(sorted(adapters)) or "none"
        raise NotFound(
            f"ft_model {name!r} is not an adapter loaded on vLLM at {listing.target} (adapters it serves: "
            f"{served}); hot-load it first.",
            field="ft_model",
        )
    if not chosen.adapter_name:
        raise InvalidArgument(
            f"ft_model {chosen.id!r} on vLLM at {listing.target} is not loaded from synthtune's adapters/ "
            f"({chosen.root}), so its prompt format is unknown.",
            field="ft_model",
        )
    return chosen


def adapter_root_on(*, target: str, served_name: str, token: str) -> str:
    """The path vLLM at `target` loaded `served_name` from (the old `lora_path`); "" if it can't say."""
    try:
        listings = deployment_selectors.served_models(targets=[target], token=token)
    except SynthtuneError:
        return ""
    return next((model.root for listing in listings for model in listing.models if model.id == served_name), "")


def allow_anonymous() -> bool:
    return bool(getattr(settings, "SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS", False))


def default_adapter_name() -> str:
    """SYNTHTUNE_DEFAULT_ADAPTER_NAME (the old DEFAULT_ADAPTER_NAME): the stable name an old client
    may leave out; it means the newest <name>-v<N>."""
    return str(getattr(settings, "SYNTHTUNE_DEFAULT_ADAPTER_NAME", "") or "")

