"""The datagen service seen from the control plane: its client, and proto <-> plain data.

Only this module knows the datagen proto; services get plain values from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from control_plane.core.clients import ServiceClient, service_client
from control_plane.core.events import EventRecord, event_kind
from control_plane.core.events import event_record as stream_event_record
from control_plane.datasets.generation import CurateParams, Filters, GenerationParams
from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.datagen.v1.datagen_pb2_grpc import DatagenServiceStub

_MODES = {
    "fixed": pb.GENERATION_MODE_FIXED,
    "self_instruct": pb.GENERATION_MODE_SELF_INSTRUCT,
    "from_instructions": pb.GENERATION_MODE_FROM_INSTRUCTIONS,
    "evol_instruct": pb.GENERATION_MODE_EVOL_INSTRUCT,
    "topic_tree": pb.GENERATION_MODE_TOPIC_TREE,
    "curate": pb.GENERATION_MODE_CURATE,
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
    "source_path": "source",
    "filters.judge.endpoint.base_url": "filters.judge.base_url",
    "filters.judge.endpoint.model": "filters.judge.model",
    "filters.judge.endpoint.token": "filters.judge.token",
    "filters.judge.endpoint.request_timeout_s": "filters.judge.request_timeout_s",
    "filters.judge.limits.concurrency": "filters.judge.concurrency",
    "filters.decontam.eval_paths": "filters.decontam.eval_datasets",
    # The eval sets go to the service as one list of paths (datasets, then adapters' splits).
    **{f"filters.decontam.eval_paths[{i}]": "filters.decontam" for i in range(64)},
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
    metadata_path: str = ""
    report: dict[str, Any] = field(default_factory=dict)


def filters_message(filters: Filters, *, eval_paths: Sequence[str] = (), judge_token: str = "") -> pb.Filters:
    """The Filters proto; `eval_paths` are the decontamination sets resolved to files."""
    message = pb.Filters()
    if (near_dup := filters.near_dup) is not None:
        message.near_dup.enabled = near_dup.enabled
        if near_dup.threshold is not None:
            message.near_dup.threshold = near_dup.threshold
    if (decontam := filters.decontam) is not None:
        message.decontam.eval_paths.extend(eval_paths)
        message.decontam.ngram = decontam.ngram or 0
        if decontam.threshold is not None:
            message.decontam.threshold = decontam.threshold
    if (judge := filters.judge) is not None:
        message.judge.endpoint.CopyFrom(
            pb.Endpoint(
                base_url=judge.base_url,
                model=judge.model,
                token=judge_token,
                request_timeout_s=judge.request_timeout_s or 0,
            )
        )
        message.judge.limits.concurrency = judge.concurrency or 0
        message.judge.rubric.extend(
            pb.Criterion(name=c["name"], description=c["description"]) for c in judge.rubric
        )
        if judge.min_score is not None:
            message.judge.min_score = judge.min_score
    return message


def start_request(
    params: GenerationParams, *, token: str, judge_token: str = "", eval_paths: Sequence[str] = ()
) -> pb.StartGenerationRequest:
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
    request = pb.StartGenerationRequest(
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
        filters=filters_message(params.filters, eval_paths=eval_paths, judge_token=judge_token),
    )
    if (evol := params.evol_instruct) is not None:
        request.evol_instruct.rounds = evol.rounds or 0
        if evol.breadth_share is not None:
            request.evol_instruct.breadth_share = evol.breadth_share
    if (tree := params.topic_tree) is not None:
        request.topic_tree.CopyFrom(pb.TopicTree(depth=tree.depth or 0, breadth=tree.breadth or 0))
    return request


def curate_request(
    params: CurateParams, *, source_path: str, judge_token: str = "", eval_paths: Sequence[str] = ()
) -> pb.StartGenerationRequest:
    """Mode curate: no teacher endpoint; the source dataset's file through the filters."""
    return pb.StartGenerationRequest(
        dataset_name=params.name,
        mode=pb.GENERATION_MODE_CURATE,
        source_path=source_path,
        num_rows=params.num_rows or 0,
        filters=filters_message(params.filters, eval_paths=eval_paths, judge_token=judge_token),
    )


def job_snapshot(job: pb.GenerationJob) -> JobSnapshot:
    return JobSnapshot(
        job_id=job.job_id,
        state=_STATES.get(job.state, "queued"),
        dataset_path=job.dataset_path,
        target_rows=job.target_rows,
        error=job.error,
        metadata_path=job.metadata_path,
        report=report_dict(job.report),
    )


def _counts(counts: pb.RowCounts) -> dict[str, int]:
    return {"kept": counts.kept, "dropped": counts.dropped, "failed": counts.failed}


def report_dict(report: pb.FilterReport) -> dict[str, Any]:
    """A FilterReport as JSON: {"dropped_by": {check: rows}, "near_dup_clusters", "judged",
    "judge_failures"}."""
    return {
        "dropped_by": dict(sorted(report.dropped_by.items())),
        "near_dup_clusters": report.near_dup_clusters,
        "judged": report.judged,
        "judge_failures": report.judge_failures,
    }


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
            "judge_prompt_tokens": progress.judge_usage.prompt_tokens,
            "judge_completion_tokens": progress.judge_usage.completion_tokens,
            "report": report_dict(progress.report),
        }
    elif kind == "row_rejected":
        rejected = event.row_rejected
        payload = {
            "index": rejected.index,
            "instruction": rejected.instruction,
            "kind": rejected.kind,
            "reason": rejected.reason,
            "check": rejected.check,
        }
    elif kind == "judge_failed":
        failed = event.judge_failed
        payload = {"index": failed.index, "instruction": failed.instruction, "reason": failed.reason}
    elif kind == "dataset_written":
        written = event.dataset_written
        payload = {
            "dataset_path": written.dataset_path,
            "sha256": written.sha256,
            "size_bytes": written.size_bytes,
            **_counts(written.counts),
            "metadata_path": written.metadata_path,
            "report": report_dict(written.report),
        }
    else:
        payload = {}
    return stream_event_record(event, payload)
