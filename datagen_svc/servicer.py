"""DatagenService over gRPC: proto <-> domain translation only.

Domain errors (synthtune.errors) propagate; the shared interceptor turns them
into precise statuses with field details.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from datagen_svc.jobs import EventKind, Job, JobState
from datagen_svc.manager import JobManager
from datagen_svc.spec import (
    DecontamSettings,
    Endpoint,
    EvolSettings,
    FilterSettings,
    GenerationSpec,
    JudgeSettings,
    Limits,
    Mode,
    NearDupSettings,
    Sampling,
    TopicTreeSettings,
)
from synthtune.datagen.v1 import datagen_pb2 as pb
from synthtune.datagen.v1 import datagen_pb2_grpc
from synthtune.eventlog import Event

logger = logging.getLogger(__name__)

SERVICE_NAME = "synthtune.datagen.v1.DatagenService"
PARAMS_LIST_LIMIT = 50

_MODES = {
    pb.GENERATION_MODE_FIXED: Mode.FIXED,
    pb.GENERATION_MODE_SELF_INSTRUCT: Mode.SELF_INSTRUCT,
    pb.GENERATION_MODE_FROM_INSTRUCTIONS: Mode.FROM_INSTRUCTIONS,
    pb.GENERATION_MODE_EVOL_INSTRUCT: Mode.EVOL_INSTRUCT,
    pb.GENERATION_MODE_TOPIC_TREE: Mode.TOPIC_TREE,
    pb.GENERATION_MODE_CURATE: Mode.CURATE,
}
_STATES = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}


class DatagenServicer(datagen_pb2_grpc.DatagenServiceServicer):
    def __init__(self, manager: JobManager):
        self._manager = manager

    async def StartGeneration(
        self, request: pb.StartGenerationRequest, context
    ) -> pb.StartGenerationResponse:
        job = self._manager.start(spec_from_proto(request))
        return pb.StartGenerationResponse(job=job_to_proto(job))

    async def WatchGeneration(
        self, request: pb.WatchGenerationRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerationEvent]:
        async for event in self._manager.watch(request.job_id, after_seq=request.after_seq):
            if context.cancelled():  # the client went away; stop following the job
                return
            yield event_to_proto(request.job_id, event)

    async def GetGeneration(self, request: pb.GetGenerationRequest, context) -> pb.GetGenerationResponse:
        return pb.GetGenerationResponse(job=job_to_proto(self._manager.get(request.job_id)))

    async def ListGenerations(
        self, request: pb.ListGenerationsRequest, context
    ) -> pb.ListGenerationsResponse:
        return pb.ListGenerationsResponse(jobs=[job_to_proto(job) for job in self._manager.list()])

    async def CancelGeneration(
        self, request: pb.CancelGenerationRequest, context
    ) -> pb.CancelGenerationResponse:
        job = await self._manager.cancel(request.job_id)
        return pb.CancelGenerationResponse(job=job_to_proto(job))

    async def ResumeGeneration(
        self, request: pb.ResumeGenerationRequest, context
    ) -> pb.ResumeGenerationResponse:
        job = self._manager.resume(request.job_id, token=request.token, judge_token=request.judge_token)
        return pb.ResumeGenerationResponse(job=job_to_proto(job))


def spec_from_proto(request: pb.StartGenerationRequest) -> GenerationSpec:
    """The domain spec of a request, unvalidated; unset optional fields become None."""
    sampling, evol, tree, filters = request.sampling, request.evol_instruct, request.topic_tree, request.filters
    near_dup, decontam, judge = filters.near_dup, filters.decontam, filters.judge
    return GenerationSpec(
        dataset_name=request.dataset_name,
        endpoint=_endpoint(request.endpoint),
        limits=_limits(request.limits),
        sampling=Sampling(
            temperature=sampling.temperature if sampling.HasField("temperature") else None,
            top_p=sampling.top_p if sampling.HasField("top_p") else None,
            max_tokens=sampling.max_tokens if sampling.HasField("max_tokens") else None,
        ),
        num_rows=request.num_rows,
        mode=_MODES.get(request.mode),
        system_prompt=request.system_prompt,
        prompt_template=request.prompt_template,
        topic=request.topic,
        seed_examples=tuple(request.seed_examples),
        instructions=tuple(request.instructions),
        evol_instruct=EvolSettings(
            rounds=evol.rounds, breadth_share=evol.breadth_share if evol.HasField("breadth_share") else None
        ),
        topic_tree=TopicTreeSettings(depth=tree.depth, breadth=tree.breadth),
        source_path=request.source_path,
        filters=FilterSettings(
            near_dup=NearDupSettings(
                enabled=near_dup.enabled,
                threshold=near_dup.threshold if near_dup.HasField("threshold") else None,
            ),
            decontam=DecontamSettings(
                eval_paths=tuple(decontam.eval_paths),
                ngram=decontam.ngram,
                threshold=decontam.threshold if decontam.HasField("threshold") else None,
            ),
            judge=JudgeSettings(
                endpoint=_endpoint(judge.endpoint),
                limits=_limits(judge.limits),
                rubric=tuple((c.name, c.description) for c in judge.rubric),
                min_score=judge.min_score if judge.HasField("min_score") else None,
            ),
        ),
    )


def _endpoint(endpoint: pb.Endpoint) -> Endpoint:
    return Endpoint(
        base_url=endpoint.base_url,
        model=endpoint.model,
        token=endpoint.token,
        skip_tls_verify=endpoint.skip_tls_verify,
        request_timeout_s=endpoint.request_timeout_s,
        max_retries=endpoint.max_retries if endpoint.HasField("max_retries") else None,
    )


def _limits(limits: pb.Limits) -> Limits:
    return Limits(concurrency=limits.concurrency, requests_per_minute=limits.requests_per_minute)


def _timestamp(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _counts(data: dict) -> pb.RowCounts:
    return pb.RowCounts(kept=data["kept"], dropped=data["dropped"], failed=data["failed"])


def _report(data: dict | None) -> pb.FilterReport:
    """A FilterReport from its JSON form (jobs written before filters existed have none)."""
    return pb.FilterReport(**(data or {}))


def params_json(params: dict) -> str:
    """The job's params as JSON; long lists are cut to their first items plus a `<name>_count`.

    A from_instructions job may carry thousands of instructions; echoing them all in every
    Get/List reply would push List past gRPC's message limit.
    """
    shown = dict(params)
    for name in ("instructions", "seed_examples"):
        items = shown.get(name) or []
        if len(items) > PARAMS_LIST_LIMIT:
            shown[name] = items[:PARAMS_LIST_LIMIT]
            shown[f"{name}_count"] = len(items)
    return json.dumps(shown, ensure_ascii=False, sort_keys=True)


def job_to_proto(job: Job) -> pb.GenerationJob:
    return pb.GenerationJob(
        job_id=job.job_id,
        dataset_name=job.dataset_name,
        dataset_path=job.dataset_path,
        state=_STATES[job.state],
        target_rows=job.target_rows,
        counts=pb.RowCounts(kept=job.counts.kept, dropped=job.counts.dropped, failed=job.counts.failed),
        usage=pb.TokenUsage(
            prompt_tokens=job.usage.prompt_tokens, completion_tokens=job.usage.completion_tokens
        ),
        error=job.error,
        sha256=job.sha256,
        size_bytes=job.size_bytes,
        params_json=params_json(job.params),
        created_at=_timestamp(job.created_at),
        updated_at=_timestamp(job.updated_at),
        judge_usage=pb.TokenUsage(
            prompt_tokens=job.judge_usage.prompt_tokens, completion_tokens=job.judge_usage.completion_tokens
        ),
        report=_report(job.report),
        metadata_path=job.metadata_path,
    )


def event_to_proto(job_id: str, event: Event) -> pb.GenerationEvent:
    message = pb.GenerationEvent(seq=event.seq, time=_timestamp(event.time), job_id=job_id)
    data = event.data
    if event.kind == EventKind.STATE_CHANGED:
        message.state_changed.CopyFrom(
            pb.StateChanged(state=_STATES[JobState(data["state"])], error=data["error"])
        )
    elif event.kind == EventKind.PROGRESS:
        message.progress.CopyFrom(
            pb.Progress(
                counts=_counts(data["counts"]),
                target_rows=data["target_rows"],
                usage=pb.TokenUsage(**data["usage"]),
                judge_usage=pb.TokenUsage(**data.get("judge_usage", {})),
                report=_report(data.get("report")),
            )
        )
    elif event.kind == EventKind.ROW_REJECTED:
        message.row_rejected.CopyFrom(pb.RowRejected(**data))
    elif event.kind == EventKind.DATASET_WRITTEN:
        message.dataset_written.CopyFrom(
            pb.DatasetWritten(
                dataset_path=data["dataset_path"],
                sha256=data["sha256"],
                size_bytes=data["size_bytes"],
                counts=_counts(data["counts"]),
                metadata_path=data.get("metadata_path", ""),
                report=_report(data.get("report")),
            )
        )
    elif event.kind == EventKind.JUDGE_FAILED:
        message.judge_failed.CopyFrom(pb.JudgeFailed(**data))
    return message
