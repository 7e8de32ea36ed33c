"""Compare latency: one CompareOne against two sequential completions, on a fixed-latency endpoint.

The endpoint is the fake OpenAI server in its own process, answering every
completion after exactly 100 ms and listing a base model and a loaded adapter
on /v1/models, as vLLM does. The baseline is what a client without the proxy
does: the base call, then the adapter call, back to back over one keep-alive
connection. CompareOne goes through the real gRPC service process (auth,
manifest read, /v1/models, both calls concurrently). Ideal ratio: 0.5. The two
are timed in turns (bench.interleave's calls_in_turns), ROUNDS rounds of CALLS calls
each, so other load on the machine hits both alike; each round gives a ratio of
the two medians, the verdict is on the median of those, and their range is printed.
Target (issue 4): p50(CompareOne) <= 0.55 x p50(two sequential calls).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from pathlib import Path

from bench.interleave import MIN_ROUNDS, calls_in_turns
from bench.result import BenchResult

LATENCY_S = 0.1
ROUNDS = MIN_ROUNDS
CALLS = 10  # per side and round
WARMUP = 3
TARGET_RATIO = 0.55
ADAPTER = "bench-v1"
PROMPT = "Name a colour."


def run() -> BenchResult:
    import httpx

    from synthtune.grpc_client import open_channel
    from synthtune.serving.v1 import serving_pb2 as pb
    from synthtune.serving.v1 import serving_pb2_grpc
    from tests.support.fake_openai import fake_openai_process
    from tests.support.procs import TEST_GRPC_TOKEN, running_service

    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(tmp) / "data"
        adapters = data_root / "adapters"
        _write_adapter(adapters / ADAPTER)
        cards = [{"id": "fake-model", "root": "/models/fake-model"},
                 {"id": ADAPTER, "root": f"{adapters.resolve()}/{ADAPTER}", "parent": "fake-model"}]
        with fake_openai_process(latency_s=LATENCY_S, models=cards) as base_url:
            target = base_url.removesuffix("/v1")
            env = {"SYNTHTUNE_DATA_ROOT": str(data_root), "SYNTHTUNE_VLLM_URL": target, "SYNTHTUNE_LOG_LEVEL": "WARNING"}
            with running_service("serving_proxy_svc", listen_var="SYNTHTUNE_SERVING_PROXY_LISTEN", env=env,
                                 log_path=Path(tmp) / "proxy.log") as proxy:
                body = {"messages": [{"role": "user", "content": PROMPT}], "temperature": 0.0, "max_tokens": 256}
                channel = open_channel(proxy.address, token=TEST_GRPC_TOKEN)
                stub = serving_pb2_grpc.ServingProxyServiceStub(channel)
                request = pb.CompareOneRequest(prompt=PROMPT, adapter_name=ADAPTER)
                with httpx.Client(timeout=10) as http, contextlib.closing(channel):
                    def sequential() -> None:
                        for model in ("fake-model", ADAPTER):
                            http.post(f"{base_url}/chat/completions", json={"model": model, **body}).raise_for_status()

                    def compare() -> None:
                        reply = stub.CompareOne(request, timeout=10)
                        assert reply.base.text and reply.adapter.text

                    times = calls_in_turns((compare, sequential), rounds=ROUNDS, calls=CALLS, warmup=WARMUP)
    comparison = times.compare(0, 1)
    ratio = comparison.ratio
    return BenchResult(
        name="compare_latency",
        target=f"CompareOne p50 <= {TARGET_RATIO} x two sequential calls ({LATENCY_S * 1000:.0f} ms endpoint, "
               f"median of {ROUNDS} rounds' ratios, in turns)",
        passed=ratio <= TARGET_RATIO,
        figures={
            **comparison.figures("compare_one", "sequential", unit="p50_ms", digits=1),
            "compare_one_p95_ms": round(times.p95(0), 1),
            "ratio_target": TARGET_RATIO,
            "overhead_vs_one_call_ms": round(times.p50(0) - LATENCY_S * 1000, 1),
            "calls_per_side": len(times.calls[0]),
        },
    )


def _write_adapter(folder: Path) -> None:
    """An export-shaped folder (the proxy reads the manifest; the fake never loads weights)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "fake-model", "r": 8}))
    (folder / "adapter_model.safetensors").write_bytes(b"bench")
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    (folder / "manifest.json").write_text(json.dumps({
        "name": folder.name, "base_model": {"id": "fake-model"}, "prompt_format": "chat", "files": files}))
