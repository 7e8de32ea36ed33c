"""The datagen service seen from the control plane: its client, and proto <-> plain data.

Only this module knows the datagen proto; services get plain values from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from control_plane.core.clients import ServiceClient, service_client
from control_plane.core.events import EventRecord, event_kind
from control_plane.core.events import event_record as stream_event_record
from control_plane.datasets.generation import GenerationParams
from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.datagen.v1.datagen_pb2_grpc import DatagenServiceStub

_MODES = {
    "fixed": pb.GENERATION_MODE_FIXED,
    "self_instruct": pb.GENERATION_MODE_SELF_INSTRUCT,
    "from_instructions": pb.GENERATION_MODE_FROM_INSTRUCTIONS,
}
_STATES = {
    pb.JOB_STATE_QUEUED: "queued",
    pb.JOB_STATE_RUNNING: "running",
    pb.JOB_STATE_SUCCEEDED: "succeeded",
    pb.JOB_STATE_FAILED: "failed",
    pb.JOB_STATE_CANCELLED: "cancelled",
}
# The service names proto fields in its errors; the API calls them by its own flat names.
FIELD_NAMES = {
    "dataset_name": "name",
    "endpoint.base_url": "base_url",
    "endpoint.model": "model",
    "endpoint.token": "token",
    "endpoint.request_timeout_s": "request_timeout_s",
    "endpoint.max_retries": "max_retries",
    "limits.concurrency": "concurrency",
    "limits.requests_per_minute": "requests_per_minute",
    "sampling.temperature": "temperature",
    "sampling.top_p": "top_p",
    "sampling.max_tokens": "max_tokens",
}


def datagen_client() -> ServiceClient:
    return service_client(
        service="datagen",
        address=settings.SYNTHTUNE_DATAGEN_ADDR,
        stub_factory=DatagenServiceStub,
        field_names=FIELD_NAMES,
    )


@dataclass(frozen=True)
class JobSnapshot:
    """A job as the service reported it in a reply."""

    job_id: str
    state: str
    dataset_path: str
    target_rows: int
    error: str


def start_request(params: GenerationParams, *, token: str) -> pb.StartGenerationRequest:
    sampling = pb.Sampling()
    for name in ("temperature", "top_p", "max_tokens"):
        if (value := getattr(params, name)) is not None:
            setattr(sampling, name, value)
    endpoint = pb.Endpoint(
        base_url=params.base_url,
        model=params.model,
        token=token,
        skip_tls_verify=params.skip_tls_verify,
        request_timeout_s=params.request_timeout_s or 0,
    )
    if params.max_retries is not None:
        endpoint.max_retries = params.max_retries
    return pb.StartGenerationRequest(
        dataset_name=params.name,
        endpoint=endpoint,
        limits=pb.Limits(
            concurrency=params.concurrency or 0, requests_per_minute=params.requests_per_minute or 0
        ),
        sampling=sampling,
        num_rows=params.num_rows,
        mode=_MODES[params.mode],
        system_prompt=params.system_prompt,
        prompt_template=params.prompt_template,
        topic=params.topic,
        seed_examples=params.seed_examples,
        instructions=params.instructions,
    )


def job_snapshot(job: pb.GenerationJob) -> JobSnapshot:
    return JobSnapshot(
        job_id=job.job_id,
        state=_STATES.get(job.state, "queued"),
        dataset_path=job.dataset_path,
        target_rows=job.target_rows,
        error=job.error,
    )


def _counts(counts: pb.RowCounts) -> dict[str, int]:
    return {"kept": counts.kept, "dropped": counts.dropped, "failed": counts.failed}


def event_record(event: pb.GenerationEvent) -> EventRecord:
    """A stored-event view of one stream message; payloads are plain JSON the API shows as is."""
    kind = event_kind(event)
    if kind == "state_changed":
        payload: dict[str, Any] = {
            "state": _STATES.get(event.state_changed.state, "queued"),
            "error": event.state_changed.error,
        }
    elif kind == "progress":
        progress = event.progress
        payload = {
            **_counts(progress.counts),
            "target_rows": progress.target_rows,
            "prompt_tokens": progress.usage.prompt_tokens,
            "completion_tokens": progress.usage.completion_tokens,
        }
    elif kind == "row_rejected":
        rejected = event.row_rejected
        payload = {
            "index": rejected.index,
            "instruction": rejected.instruction,
            "kind": rejected.kind,
            "reason": rejected.reason,
        }
    elif kind == "dataset_written":
        written = event.dataset_written
        payload = {
            "dataset_path": written.dataset_path,
            "sha256": written.sha256,
            "size_bytes": written.size_bytes,
            **_counts(written.counts),
        }
    else:
        payload = {}
    return stream_event_record(event, payload)
