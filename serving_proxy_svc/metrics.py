"""The serving proxy's Prometheus metrics: its calls to vLLM, and what each vLLM serves."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

VLLM_REQUESTS = Counter(
    "synthtune_vllm_requests_total",
    "Calls the proxy made to vLLM, by target, operation (models, load, unload, chat, completion) and outcome "
    "(ok, http_4xx, http_5xx, timeout, unreachable, transport_error, cancelled).",
    ["target", "op", "outcome"],
)
VLLM_SECONDS = Histogram(
    "synthtune_vllm_request_seconds",
    "Time of the proxy's calls to vLLM, by target and operation.",
    ["target", "op"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
ADAPTERS_LOADED = Gauge(
    "synthtune_vllm_adapters_loaded",
    "LoRA adapters a vLLM target serves, as of the proxy's latest /v1/models call to it "
    "(every load, and the control plane's reconcile).",
    ["target"],
    multiprocess_mode="mostrecent",
)

_OPS = {
    "/v1/models": "models",
    "/v1/load_lora_adapter": "load",
    "/v1/unload_lora_adapter": "unload",
    "/v1/chat/completions": "chat",
    "/v1/completions": "completion",
}


def outcome_of(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    return "http_4xx" if status < 500 else "http_5xx"


def vllm_call_done(target: str, route: str, outcome: str, seconds: float) -> None:
    op = _OPS.get(route, "other")
    VLLM_REQUESTS.labels(target, op, outcome).inc()
    VLLM_SECONDS.labels(target, op).observe(seconds)
