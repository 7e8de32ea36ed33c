"""ServingProxyService over gRPC: proto <-> domain translation only.

Domain errors propagate; the shared interceptor turns them into statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from serving_proxy_svc.compare import Sampling, SideSummary
from serving_proxy_svc.judge import JudgeConfig, JudgeSummary, RowJudgement, Score, check_judge
from serving_proxy_svc.proxy import CompareRow, CompareSummary, LoadResult, ServingProxy, TargetModels
from serving_proxy_svc.vllm_client import Completion
from synthtune.serving.v1 import serving_pb2 as pb
from synthtune.serving.v1 import serving_pb2_grpc

SERVICE_NAME = "synthtune.serving.v1.ServingProxyService"


class ServingProxyServicer(serving_pb2_grpc.ServingProxyServiceServicer):
    def __init__(self, proxy: ServingProxy):
        self._proxy = proxy

    async def LoadAdapter(self, request: pb.LoadAdapterRequest, context) -> pb.LoadAdapterResponse:
        result = await self._proxy.load_adapter(adapter_name=request.adapter_name, targets=list(request.targets),
                                                token=request.token)
        return pb.LoadAdapterResponse(served_name=result.served_name, replicas=_replicas(result))

    async def UnloadAdapter(self, request: pb.UnloadAdapterRequest, context) -> pb.UnloadAdapterResponse:
        result = await self._proxy.unload_adapter(served_name=request.served_name, targets=list(request.targets),
                                                  token=request.token)
        return pb.UnloadAdapterResponse(replicas=_replicas(result))

    async def ListServedModels(self, request: pb.ListServedModelsRequest, context) -> pb.ListServedModelsResponse:
        targets = await self._proxy.list_served_models(targets=list(request.targets), token=request.token)
        return pb.ListServedModelsResponse(targets=[_target_models(t) for t in targets])

    async def CompareOne(self, request: pb.CompareOneRequest, context) -> pb.CompareOneResponse:
        result = await self._proxy.compare_one(
            prompt=request.prompt, adapter_name=request.adapter_name, served_name=request.served_name,
            target=request.target, token=request.token, sampling=sampling_from_proto(request),
            system_prompt=request.system_prompt)
        return pb.CompareOneResponse(base=generation_to_proto(result.base), adapter=generation_to_proto(result.adapter),
                                     prompt_format=result.prompt_format)

    async def CompareBatch(self, request: pb.CompareBatchRequest,
                           context: grpc.aio.ServicerContext) -> AsyncIterator[pb.CompareBatchEvent]:
        events = self._proxy.compare_batch(
            adapter_name=request.adapter_name, served_name=request.served_name, dataset_path=request.dataset_path,
            limit=request.limit, target=request.target, token=request.token, sampling=sampling_from_proto(request),
            judge=judge_from_proto(request))
        try:
            async for event in events:
                if isinstance(event, CompareRow):
                    yield pb.CompareBatchEvent(row=row_to_proto(event))
                else:
                    yield pb.CompareBatchEvent(summary=summary_to_proto(event))
        finally:
            await events.aclose()  # a client that went away stops the vLLM calls now, not at garbage collection


def sampling_from_proto(request: pb.CompareOneRequest | pb.CompareBatchRequest) -> Sampling:
    if not request.HasField("sampling"):
        return Sampling()
    s = request.sampling
    return Sampling(
        temperature=s.temperature if s.HasField("temperature") else None,
        top_p=s.top_p if s.HasField("top_p") else None,
        max_tokens=s.max_tokens if s.HasField("max_tokens") else None,
        seed=s.seed if s.HasField("seed") else None,
    )


def judge_from_proto(request: pb.CompareBatchRequest) -> JudgeConfig | None:
    """None without a judge; a judge message with anything set must name a valid endpoint."""
    if not request.HasField("judge"):
        return None
    j = request.judge
    if not (j.base_url or j.model):
        return None
    return check_judge(base_url=j.base_url, model=j.model, token=j.token, rubric=j.rubric, mode=j.mode,
                       concurrency=j.concurrency, timeout_s=j.request_timeout_s,
                       max_retries=j.max_retries if j.HasField("max_retries") else None, max_tokens=j.max_tokens)


def _score(score: Score | None) -> pb.SingleScore | None:
    return None if score is None else pb.SingleScore(score=score.score, reason=score.reason, error=score.error)


def judgement_to_proto(judgement: RowJudgement | None) -> pb.RowJudgement | None:
    if judgement is None:
        return None
    return pb.RowJudgement(
        outcome=judgement.outcome, inconsistent=judgement.inconsistent, reason=judgement.reason,
        verdicts=[pb.PairwiseVerdict(first=v.first, winner=v.winner, reason=v.reason, error=v.error)
                  for v in judgement.verdicts],
        base_score=_score(judgement.base_score), adapter_score=_score(judgement.adapter_score))


def judge_summary_to_proto(summary: JudgeSummary | None) -> pb.JudgeSummary | None:
    if summary is None:
        return None
    return pb.JudgeSummary(**{name: getattr(summary, name) for name in pb.JudgeSummary.DESCRIPTOR.fields_by_name})


def _replicas(result: LoadResult) -> list[pb.ReplicaResult]:
    return [pb.ReplicaResult(target=r.target, ok=r.ok, served_name=r.served_name, code=r.code, message=r.message,
                             already_loaded=r.already_loaded) for r in result.replicas]


def _target_models(target: TargetModels) -> pb.TargetModels:
    return pb.TargetModels(
        target=target.target, reachable=target.reachable, error=target.error,
        models=[pb.ServedModel(id=m.id, root=m.root, parent=m.parent, adapter_name=m.adapter_name)
                for m in target.models])


def generation_to_proto(completion: Completion | None) -> pb.Generation | None:
    if completion is None:
        return None
    return pb.Generation(model=completion.model, text=completion.text, latency_ms=completion.latency_ms,
                         prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                         finish_reason=completion.finish_reason)


def row_to_proto(row: CompareRow) -> pb.CompareRow:
    return pb.CompareRow(
        index=row.index, prompt=row.prompt, reference=row.reference,
        base=generation_to_proto(row.base), adapter=generation_to_proto(row.adapter),
        base_exact=row.base_exact, adapter_exact=row.adapter_exact,
        base_chrf=row.base_chrf, adapter_chrf=row.adapter_chrf, error=row.error,
        judgement=judgement_to_proto(row.judgement))


def _side(side: SideSummary) -> pb.SideSummary:
    return pb.SideSummary(exact_match_rate=side.exact_match_rate, chrf=side.chrf, latency_p50_ms=side.latency_p50_ms,
                          latency_p95_ms=side.latency_p95_ms, stop_rate=side.stop_rate)


def summary_to_proto(summary: CompareSummary) -> pb.CompareSummary:
    return pb.CompareSummary(rows=summary.rows, base=_side(summary.base), adapter=_side(summary.adapter),
                             dataset_path=summary.dataset_path, prompt_format=summary.prompt_format,
                             failed_rows=summary.failed_rows, judge=judge_summary_to_proto(summary.judge))
