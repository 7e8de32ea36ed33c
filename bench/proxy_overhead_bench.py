"""Proxy overhead per call: REST -> control plane -> gRPC -> serving proxy -> vLLM, against the
same request sent to vLLM directly.

Everything runs as `make up` runs it (gunicorn, the worker, the trainer, the serving proxy),
in front of a real vLLM CPU server with the tiny Phi-3; the trainer first exports a small
adapter and it is loaded through the API. Three legs per path, in rotating order so drift
hits all alike: through the whole stack, straight to the proxy over gRPC, straight to vLLM.

- list (the target): GET /api/v1/served-models/ -> ListServedModels -> GET /v1/models, against
  GET /v1/models. One vLLM request each way: the per-call overhead;
- compare (reported): POST /api/v1/compare/ (max_tokens=1, greedy). The proxy reads
  /v1/models and asks base and adapter at once; directly: GET /v1/models, then both chat
  completions at once (two threads). The control plane also validates, looks the adapter up
  and records the comparison; that is in the figure.

Overhead = p50(through the stack) - p50(direct); the shares split it at the gRPC leg.
On a 2-core machine the compare figure also holds CPU contention: vLLM's CPU build computes
on every core while the proxy, gunicorn and the client wait for a slice, so each extra
process hop costs scheduling delay there that a GPU-served vLLM would not impose.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.result import BenchResult
from bench.trainer_data import models

TARGET_P50_OVERHEAD_MS = 5.0
WARMUP = 20
ITERATIONS = 300
BASE_MODEL = "tiny-phi3"
PROMPT = "Say something about the sea."


def _p50(values: list[float]) -> float:
    return statistics.median(values)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def run() -> BenchResult:
    import httpx

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
                ThreadPoolExecutor(2) as pool,
            ):
                adapter = _adapter(api)
                api.load_adapter(adapter)
                body = {"adapter": adapter, "prompt": PROMPT, "sampling": {"max_tokens": 1, "temperature": 0}}

                def via_stack_compare() -> None:
                    api.request("POST", "/api/v1/compare/", json=body)

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

                def via_stack_list() -> None:
                    api.request("GET", "/api/v1/served-models/")

                def direct_list() -> None:
                    direct.get("/v1/models").raise_for_status()

                proxy = open_channel(
                    stack.stack.env()["SYNTHTUNE_SERVING_PROXY_LISTEN"], token=stack.stack.config.grpc_token
                )
                stub = ServingProxyServiceStub(proxy)
                one = pb.CompareOneRequest(
                    prompt=PROMPT, adapter_name=adapter, sampling=pb.Sampling(max_tokens=1, temperature=0)
                )
                legs = {
                    "compare": (
                        via_stack_compare,
                        lambda: stub.CompareOne(one, timeout=60),
                        direct_compare,
                    ),
                    "list": (
                        via_stack_list,
                        lambda: stub.ListServedModels(pb.ListServedModelsRequest(), timeout=60),
                        direct_list,
                    ),
                }
                figures: dict[str, float | int] = {}
                for label, calls in legs.items():
                    for _ in range(WARMUP):
                        for call in calls:
                            call()
                    times: list[list[float]] = [[], [], []]
                    for i in range(ITERATIONS):
                        # Rotate the order, so no leg always gets the warmest caches.
                        for k in range(3):
                            leg = (i + k) % 3
                            times[leg].append(_timed(calls[leg]))
                    stack_ms, grpc_ms, direct_ms = (_p50(t) for t in times)
                    figures[f"{label}_stack_p50_ms"] = round(stack_ms, 2)
                    figures[f"{label}_proxy_grpc_p50_ms"] = round(grpc_ms, 2)
                    figures[f"{label}_direct_p50_ms"] = round(direct_ms, 2)
                    figures[f"{label}_overhead_p50_ms"] = round(stack_ms - direct_ms, 2)
                    figures[f"{label}_control_plane_share_ms"] = round(stack_ms - grpc_ms, 2)
                    figures[f"{label}_proxy_share_ms"] = round(grpc_ms - direct_ms, 2)
                    figures[f"{label}_stack_p95_ms"] = round(_p95(times[0]), 2)
                    figures[f"{label}_direct_p95_ms"] = round(_p95(times[2]), 2)
                proxy.close()
                api.unload_adapter(adapter)
    figures["iterations"] = ITERATIONS
    overhead = figures["list_overhead_p50_ms"]
    return BenchResult(
        name="proxy_overhead",
        target=f"REST -> gRPC proxy -> vLLM, p50 overhead per call over direct vLLM <= {TARGET_P50_OVERHEAD_MS:.0f} ms",
        passed=overhead <= TARGET_P50_OVERHEAD_MS,
        figures=figures,
    )


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
