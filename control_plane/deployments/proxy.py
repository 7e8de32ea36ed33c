"""The serving proxy seen from the control plane: its client, and proto <-> plain data.

Only this module knows the serving proto; services get plain values from it. vLLM
tokens pass through in the request and are never kept here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

from control_plane.core.clients import ServiceClient, service_client
from control_plane.core.errors import SynthtuneError, typed_error
from synthtune.serving.v1 import serving_pb2 as pb
from synthtune.serving.v1.serving_pb2_grpc import ServingProxyServiceStub

# The proxy checks the adapter, loads it on every replica and checks /v1/models after.
LOAD_TIMEOUT_S = 120.0
# Base and adapter generations on a CPU vLLM that runs one sequence at a time.
COMPARE_TIMEOUT_S = 300.0
# A batch is one server stream: bound the whole of it.
BATCH_DEADLINE_S = 1800.0
SAMPLING_FIELDS = ("temperature", "top_p", "max_tokens", "seed")
JUDGE_FIELDS = (
    "base_url",
    "model",
    "token",
    "rubric",
    "mode",
    "concurrency",
    "request_timeout_s",
    "max_tokens",
)

# The proxy's field names (in its errors) as the API calls them.
FIELD_NAMES = {
    "adapter_name": "adapter",
    "served_name": "served_name",
    "targets": "targets",
    "target": "target",
    "prompt": "prompt",
    "system_prompt": "system_prompt",
    "dataset_path": "dataset",
    "limit": "limit",
    **{f"sampling.{name}": f"sampling.{name}" for name in SAMPLING_FIELDS},
    **{name: f"sampling.{name}" for name in SAMPLING_FIELDS},
    **{f"judge.{name}": f"judge.{name}" for name in (*JUDGE_FIELDS, "max_retries")},
}


def _call(method: str, request: Any, *, timeout_s: float | None = None) -> Any:
    return proxy_client().call(method, request, timeout_s=timeout_s)


def proxy_client() -> ServiceClient:
    return service_client(
        service="serving proxy",
        address=settings.SYNTHTUNE_SERVING_PROXY_ADDR,
        stub_factory=ServingProxyServiceStub,
        field_names=FIELD_NAMES,
    )


def normalize_target(url: str) -> str:
    """One spelling per vLLM, the proxy's: the base URL without a trailing '/' or '/v1'."""
    return url.strip().rstrip("/").removesuffix("/v1").rstrip("/")


# --- plain values ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaResult:
    target: str
    ok: bool
    served_name: str
    code: str
    message: str
    already_loaded: bool

    def error(self) -> SynthtuneError:
        """The typed error this replica's failure stands for (its HTTP status follows the code);
        the message names the vLLM."""
        message = self.message or f"{self.code or 'UNKNOWN'} from the serving proxy"
        if self.target and self.target not in message:
            message = f"{message} (vLLM at {self.target})"
        return typed_error(self.code, message, extra={"target": self.target, "upstream_code": self.code})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoadResult:
    served_name: str
    replicas: list[ReplicaResult]


@dataclass(frozen=True)
class ServedModel:
    id: str
    root: str
    parent: str
    adapter_name: str


@dataclass(frozen=True)
class TargetModels:
    target: str
    reachable: bool
    error: str
    models: list[ServedModel] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """asdict(self), built field by field: dataclasses.asdict deep-copies every value, about 8 us a
        model, a listing's largest cost after the call itself."""
        return {
            "target": self.target,
            "reachable": self.reachable,
            "error": self.error,
            "models": [
                {"id": m.id, "root": m.root, "parent": m.parent, "adapter_name": m.adapter_name}
                for m in self.models
            ],
        }


@dataclass(frozen=True)
class Generation:
    model: str
    text: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class CompareResult:
    base: Generation
    adapter: Generation
    prompt_format: str


def _replica(result: pb.ReplicaResult) -> ReplicaResult:
    return ReplicaResult(
        target=normalize_target(result.target),
        ok=result.ok,
        served_name=result.served_name,
        code=result.code,
        message=result.message,
        already_loaded=result.already_loaded,
    )


def _generation(generation: pb.Generation) -> Generation:
    return Generation(
        model=generation.model,
        text=generation.text,
        latency_ms=round(generation.latency_ms, 2),
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        finish_reason=generation.finish_reason,
    )


def _sampling(sampling: dict[str, Any]) -> pb.Sampling:
    # Optional fields: unset ones stay unset, so the proxy's defaults (temperature 0) apply.
    return pb.Sampling(**{name: sampling[name] for name in SAMPLING_FIELDS if sampling.get(name) is not None})


def _side(summary: pb.SideSummary) -> dict[str, float]:
    return {
        "exact_match_rate": summary.exact_match_rate,
        "chrf": round(summary.chrf, 2),
        "latency_p50_ms": round(summary.latency_p50_ms, 2),
        "latency_p95_ms": round(summary.latency_p95_ms, 2),
        "stop_rate": summary.stop_rate,
    }


def _judge(judge: dict[str, Any] | None) -> pb.Judge | None:
    if not judge:
        return None
    return pb.Judge(**{name: judge[name] for name in JUDGE_FIELDS if judge.get(name) not in (None, "")})


def _row_judgement(judgement: pb.RowJudgement) -> dict[str, Any]:
    def score(side: pb.SingleScore) -> dict[str, Any]:
        return {"score": side.score or None, "reason": side.reason, "error": side.error}

    return {
        "outcome": judgement.outcome,
        "inconsistent": judgement.inconsistent,
        "reason": judgement.reason,
        "verdicts": [
            {"first": v.first, "winner": v.winner, "reason": v.reason, "error": v.error}
            for v in judgement.verdicts
        ],
        "base_score": score(judgement.base_score) if judgement.HasField("base_score") else None,
        "adapter_score": score(judgement.adapter_score) if judgement.HasField("adapter_score") else None,
    }


def _judge_summary(summary: pb.JudgeSummary) -> dict[str, Any]:
    rates = ("win_rate", "tie_rate", "loss_rate", "win_rate_low", "win_rate_high")
    return {
        "model": summary.model,
        "mode": summary.mode,
        **{name: getattr(summary, name) for name in ("wins", "ties", "losses", "no_verdict", "inconsistent")},
        **{name: round(getattr(summary, name), 4) for name in rates},
        "base_score_mean": round(summary.base_score_mean, 3),
        "adapter_score_mean": round(summary.adapter_score_mean, 3),
        "base_scored": summary.base_scored,
        "adapter_scored": summary.adapter_scored,
        "prompt_tokens": summary.prompt_tokens,
        "completion_tokens": summary.completion_tokens,
        "error": summary.error,
    }


# --- calls -------------------------------------------------------------------------------


def load_adapter(*, adapter_name: str, targets: list[str], token: str) -> LoadResult:
    reply = _call(
        "LoadAdapter",
        pb.LoadAdapterRequest(adapter_name=adapter_name, targets=targets, token=token),
        timeout_s=LOAD_TIMEOUT_S,
    )
    return LoadResult(served_name=reply.served_name, replicas=[_replica(r) for r in reply.replicas])


def unload_adapter(*, served_name: str, targets: list[str], token: str) -> list[ReplicaResult]:
    reply = _call(
        "UnloadAdapter",
        pb.UnloadAdapterRequest(served_name=served_name, targets=targets, token=token),
        timeout_s=LOAD_TIMEOUT_S,
    )
    return [_replica(r) for r in reply.replicas]


def list_served_models(
    *, targets: list[str], token: str = "", timeout_s: float | None = None
) -> list[TargetModels]:
    reply = _call(
        "ListServedModels", pb.ListServedModelsRequest(targets=targets, token=token), timeout_s=timeout_s
    )
    return [
        TargetModels(
            target=normalize_target(target.target),
            reachable=target.reachable,
            error=target.error,
            models=[
                ServedModel(id=m.id, root=m.root, parent=m.parent, adapter_name=m.adapter_name)
                for m in target.models
            ],
        )
        for target in reply.targets
    ]


def compare_one(
    *,
    prompt: str,
    adapter_name: str,
    served_name: str,
    target: str,
    token: str,
    sampling: dict[str, Any],
    system_prompt: str,
) -> CompareResult:
    request = pb.CompareOneRequest(
        prompt=prompt,
        adapter_name=adapter_name,
        served_name=served_name,
        target=target,
        token=token,
        sampling=_sampling(sampling),
        system_prompt=system_prompt,
    )
    reply = _call("CompareOne", request, timeout_s=COMPARE_TIMEOUT_S)
    return CompareResult(
        base=_generation(reply.base), adapter=_generation(reply.adapter), prompt_format=reply.prompt_format
    )


def compare_batch(
    *,
    adapter_name: str,
    served_name: str,
    dataset_path: str,
    limit: int,
    target: str,
    token: str,
    sampling: dict[str, Any],
    judge: dict[str, Any] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """("row", row) for each compared row, then ("summary", summary). With `judge` (base_url,
    model, token, rubric, mode, concurrency...), rows and summary carry the judge's `judge`."""
    request = pb.CompareBatchRequest(
        adapter_name=adapter_name,
        served_name=served_name,
        dataset_path=dataset_path,
        limit=limit,
        target=target,
        token=token,
        sampling=_sampling(sampling),
        judge=_judge(judge),
    )
    for event in proxy_client().stream("CompareBatch", request, timeout_s=BATCH_DEADLINE_S):
        kind = event.WhichOneof("kind")
        if kind == "row":
            row = event.row
            yield (
                "row",
                {
                    "index": row.index,
                    "prompt": row.prompt,
                    "reference": row.reference,
                    "base": asdict(_generation(row.base)),
                    "adapter": asdict(_generation(row.adapter)),
                    "base_exact": row.base_exact,
                    "adapter_exact": row.adapter_exact,
                    "base_chrf": round(row.base_chrf, 2),
                    "adapter_chrf": round(row.adapter_chrf, 2),
                    "error": row.error,
                    "judge": _row_judgement(row.judgement) if row.HasField("judgement") else None,
                },
            )
        elif kind == "summary":
            summary = event.summary
            yield (
                "summary",
                {
                    "rows": summary.rows,
                    "failed_rows": summary.failed_rows,
                    "dataset_path": summary.dataset_path,
                    "prompt_format": summary.prompt_format,
                    "base": _side(summary.base),
                    "adapter": _side(summary.adapter),
                    "judge": _judge_summary(summary.judge) if summary.HasField("judge") else None,
                },
            )
