"""Proxy overhead per call: REST -> control plane -> gRPC -> serving proxy -> vLLM, against the
same request sent to vLLM directly.

Everything runs as `make up` runs it (gunicorn, the worker, the trainer, the serving proxy),
in front of a real vLLM CPU server with the tiny Phi-3; the trainer first exports a small
adapter and it is loaded through the API. The legs are timed in turns (bench.interleave's
calls_in_turns: one call of each leg after another, the first leg rotating), ROUNDS rounds of
CALLS calls per leg; each round's figure is a leg's median, the overhead is the median of the
per-round differences (stack - direct), and the range over the rounds is printed.

- list (the target): GET /api/v1/served-models/ -> ListServedModels -> GET /v1/models, against
  GET /v1/models. One vLLM request each way: the per-call overhead. Two more legs show where it
  goes: a gRPC health Check on the proxy's channel (the floor of any gRPC call: the transport)
  and GET /healthz on the control plane (the floor of any REST call: the client, gunicorn,
  Django's middleware, one SELECT 1). So the overhead splits into
    control plane = stack - proxy leg (of which REST floor = healthz; the rest is DRF, token
    auth's query, validation, the gRPC client), and
    proxy = proxy leg - direct (of which gRPC floor = health; the rest is the servicer and
    its own HTTP client to vLLM);
- compare (reported): POST /api/v1/compare/ (max_tokens=1, greedy). The proxy reads
  /v1/models and asks base and adapter at once; directly: GET /v1/models, then both chat
  completions at once (two threads). The control plane also validates, looks the adapter up
  and records the comparison; that is in the figure.

On a 2-core machine the figures also hold CPU contention: vLLM's CPU build computes on every
core while the proxy, gunicorn and the client wait for a slice, so each extra process hop
costs scheduling delay there that a GPU-served vLLM would not impose.
"""

from __future__ import annotations

import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.interleave import MIN_ROUNDS, CallTimes, calls_in_turns
from bench.result import BenchResult
from bench.trainer_data import models

TARGET_P50_OVERHEAD_MS = 5.0
WARMUP = 20
ROUNDS = MIN_ROUNDS
CALLS = {"list": 60, "compare": 20}  # per leg and round
BASE_MODEL = "tiny-phi3"
PROMPT = "Say something about the sea."


def run() -> BenchResult:
    import httpx
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from synthtune.client import Client
    from synthtune.grpc_client import open_channel
    from synthtune.local_vllm import VllmServer
    from synthtune.serving.v1 import serving_pb2 as pb
    from synthtune.serving.v1.serving_pb2_grpc import ServingProxyServiceStub
    from tests.support.stack import running_stack

    model_root = models()
    with tempfile.TemporaryDirectory() as tmp:
        vllm = VllmServer(model_root / BASE_MODEL, served_name=BASE_MODEL, log_path=Path(tmp) / "vllm.log")
        env = {
            "SYNTHTUNE_MODELS_ROOT": str(model_root),
            "SYNTHTUNE_VLLM_URL": vllm.url,
            "SYNTHTUNE_VLLM_MAX_LORA_RANK": "8",
            "SYNTHTUNE_LOG_LEVEL": "WARNING",
        }
        with vllm, running_stack(Path(tmp) / "data", **env) as stack:
            with (
                Client(stack.url, token=stack.token, timeout_s=120) as api,
                httpx.Client(base_url=vllm.url, timeout=60) as direct,
                httpx.Client(base_url=stack.url, timeout=60) as plain,
                ThreadPoolExecutor(2) as pool,
            ):
                adapter = _adapter(api)
                api.load_adapter(adapter)
                body = {"adapter": adapter, "prompt": PROMPT, "sampling": {"max_tokens": 1, "temperature": 0}}

                def chat(model: str) -> None:
                    reply = direct.post(
                        "/v1/chat/completions",
                        json={"model": model, "messages": [{"role": "user", "content": PROMPT}],
                              "max_tokens": 1, "temperature": 0},
                    )  # fmt: skip
                    reply.raise_for_status()

                def direct_compare() -> None:
                    direct.get("/v1/models").raise_for_status()
                    for done in [pool.submit(chat, BASE_MODEL), pool.submit(chat, adapter)]:
                        done.result()

                proxy = open_channel(
                    stack.stack.env()["SYNTHTUNE_SERVING_PROXY_LISTEN"], token=stack.stack.config.grpc_token
                )
                stub = ServingProxyServiceStub(proxy)
                health = health_pb2_grpc.HealthStub(proxy)
                one = pb.CompareOneRequest(
                    prompt=PROMPT, adapter_name=adapter, sampling=pb.Sampling(max_tokens=1, temperature=0)
                )
                # Leg order in each tuple: through the stack, straight to the proxy over gRPC, straight
                # to vLLM, then (list only) the two floors.
                legs = {
                    "list": (
                        lambda: api.request("GET", "/api/v1/served-models/"),
                        lambda: stub.ListServedModels(pb.ListServedModelsRequest(), timeout=60),
                        lambda: direct.get("/v1/models").raise_for_status(),
                        lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=60),
                        lambda: plain.get("/healthz").raise_for_status(),
                    ),
                    "compare": (
                        lambda: api.request("POST", "/api/v1/compare/", json=body),
                        lambda: stub.CompareOne(one, timeout=60),
                        direct_compare,
                    ),
                }
                timed = {label: calls_in_turns(calls, rounds=ROUNDS, calls=CALLS[label], warmup=WARMUP)
                         for label, calls in legs.items()}
                proxy.close()
                api.unload_adapter(adapter)
    figures: dict[str, object] = {}
    for label, times in timed.items():
        figures.update(_figures(label, times))
    figures["rounds"] = ROUNDS
    figures["calls_per_leg_and_round"] = CALLS
    overhead = timed["list"].compare(0, 2).difference
    return BenchResult(
        name="proxy_overhead",
        target=f"REST -> gRPC proxy -> vLLM, p50 overhead per call over direct vLLM <= {TARGET_P50_OVERHEAD_MS:.0f} ms "
               f"(median of {ROUNDS} rounds' differences, legs in turns)",
        passed=overhead <= TARGET_P50_OVERHEAD_MS,
        figures=figures,
    )


def _figures(label: str, times: CallTimes) -> dict[str, object]:
    """Per leg its p50 over every call; the overhead and the shares as medians of per-round differences."""
    def share(a: int, b: int) -> float:
        return round(times.compare(a, b).difference, 2)

    overall = times.compare(0, 2)
    figures: dict[str, object] = {
        f"{label}_stack_p50_ms": round(times.p50(0), 2),
        f"{label}_proxy_grpc_p50_ms": round(times.p50(1), 2),
        f"{label}_direct_p50_ms": round(times.p50(2), 2),
        f"{label}_overhead_p50_ms": round(overall.difference, 2),
        f"{label}_overhead_range_ms": f"{min(overall.differences):.2f}-{max(overall.differences):.2f}",
        f"{label}_control_plane_share_ms": share(0, 1),
        f"{label}_proxy_share_ms": share(1, 2),
    }
    if len(times.per_round) == 5:
        figures[f"{label}_grpc_floor_p50_ms"] = round(times.p50(3), 2)
        figures[f"{label}_rest_floor_p50_ms"] = round(times.p50(4), 2)
        # The shares less their floors: what the request's own work costs on each side.
        figures[f"{label}_control_plane_beyond_floors_ms"] = round(
            times.compare(0, 1).difference - statistics.median(times.per_round[4]), 2)
        figures[f"{label}_proxy_beyond_grpc_floor_ms"] = round(
            times.compare(1, 2).difference - statistics.median(times.per_round[3]), 2)
    figures[f"{label}_stack_p95_ms"] = round(times.p95(0), 2)
    figures[f"{label}_direct_p95_ms"] = round(times.p95(2), 2)
    figures[f"{label}_runs_overhead_ms"] = [round(d, 2) for d in overall.differences]
    return figures


def _adapter(api) -> str:
    """A small adapter for the tiny Phi-3, fine-tuned and exported through the stack."""
    rows = [{"instruction": f"Say something about the sea, number {n}.", "output": "Aye."} for n in range(24)]
    api.request("POST", "/api/v1/datasets/", json={"name": "overhead", "rows": rows})
    run = api.start_run(datasets=["overhead"], base_model=BASE_MODEL, adapter_name="overhead",
                        hyperparameters={"epochs": 1, "max_length": 64, "device": "cpu"})  # fmt: skip
    for _ in api.follow_run(run["run_id"]):
        pass
    finished = api.run(run["run_id"])
    if finished["state"] != "succeeded" or not finished["adapter"]:
        raise RuntimeError(f"the bench's fine-tune did not export an adapter: {finished}")
    return finished["adapter"]
