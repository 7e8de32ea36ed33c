"""openai_relay: what the /v1/ inference relay adds to a 32-token chat completion.

Everything runs as `make up` runs it (gunicorn gthread, the worker, the services) in front of a
real vLLM CPU server with the tiny Phi-3. Candidate: POST /v1/chat/completions on the control
plane (Bearer token, the relay's model -> target table, one pooled connection to vLLM).
Baseline: the same body POSTed straight to vLLM. Both are greedy with ignore_eos, so every call
generates exactly 32 tokens, and both use one kept-alive httpx client.

The calls are made in turns (AB BA ...) over ROUNDS rounds of CALLS_PER_ROUND calls per side, so
drift on the machine hits both alike. The verdict is on p50(relay) / p50(direct); each round's
ratio of medians is the spread.

Streaming, checked on the same stack: the CPU vLLM's own pace jitters (it often sends a burst of
tokens at once), so a paced stand-in (tests.support.paced_sse, one chunk every 0.2 s) is a
second target of the serving proxy, and a stream through gunicorn must bring its first chunk
long before its last (buffered, they would come together).

On this 2-core machine vLLM's CPU engine computes on one core while gunicorn, the client and
vLLM's API server share the other, so each extra process hop also pays some scheduling delay
that a GPU-served vLLM would not impose.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.result import BenchResult
from bench.trainer_data import models

TARGET_RATIO = 1.10
ROUNDS = 8
CALLS_PER_ROUND = 8  # per side: 64 calls each
WARMUP = 5
PACED_PIECES, PACED_GAP_S = 8, 0.2
BASE_MODEL = "tiny-phi3"
PACED_MODEL = "slow-model"  # what tests.support.paced_sse serves
BODY = {
    "model": BASE_MODEL,
    "messages": [{"role": "user", "content": "Say something about the sea."}],
    "max_tokens": 32,
    "temperature": 0,
    "ignore_eos": True,  # vLLM's: always 32 tokens, whatever the random model says
}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[round(0.95 * (len(ordered) - 1))]


def _timed_call(client, url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    reply = client.post(url, json=BODY, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    reply.raise_for_status()
    if reply.json()["usage"]["completion_tokens"] != BODY["max_tokens"]:
        raise RuntimeError(f"expected {BODY['max_tokens']} tokens: {reply.text[:300]}")
    return elapsed


def _paced_arrivals(client, url: str, headers: dict[str, str]) -> list[float]:
    """Seconds from the request to each content chunk of the paced stand-in's stream."""
    body = {"model": PACED_MODEL, "messages": BODY["messages"], "stream": True}
    started, arrivals = time.perf_counter(), []
    with client.stream("POST", url, json=body, headers=headers) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.perf_counter() - started)
    if len(arrivals) != PACED_PIECES:
        raise RuntimeError(f"the paced stream brought {len(arrivals)} chunks, not {PACED_PIECES}")
    return arrivals


def run() -> BenchResult:
    import httpx

    from synthtune.local_vllm import VllmServer
    from tests.support.paced_sse import PacedStream
    from tests.support.stack import running_stack

    model_root = models()
    with tempfile.TemporaryDirectory() as tmp, PacedStream(pieces=PACED_PIECES, gap_s=PACED_GAP_S) as paced:
        vllm = VllmServer(model_root / BASE_MODEL, served_name=BASE_MODEL, log_path=Path(tmp) / "vllm.log")
        env = {
            "SYNTHTUNE_VLLM_URL": vllm.url,
            "SYNTHTUNE_VLLM_REPLICAS": f"{vllm.url},{paced.url}",  # the proxy lists what both serve
            "SYNTHTUNE_LOG_LEVEL": "WARNING",
        }
        with vllm, running_stack(Path(tmp) / "data", **env) as stack, httpx.Client(timeout=120) as client:
            sides = {
                "relay": (f"{stack.url}/v1/chat/completions", {"Authorization": f"Bearer {stack.token}"}),
                "direct": (f"{vllm.url}/v1/chat/completions", {}),
            }
            for _ in range(WARMUP):
                for url, headers in sides.values():
                    _timed_call(client, url, headers)
            times: dict[str, list[float]] = {"relay": [], "direct": []}
            round_ratios = []
            for number in range(ROUNDS):
                ran: dict[str, list[float]] = {"relay": [], "direct": []}
                order = ("relay", "direct") if number % 2 == 0 else ("direct", "relay")
                for _ in range(CALLS_PER_ROUND):
                    for side in order:
                        ran[side].append(_timed_call(client, *sides[side]))
                round_ratios.append(statistics.median(ran["relay"]) / statistics.median(ran["direct"]))
                for side in ran:
                    times[side] += ran[side]
            paced_runs = [_paced_arrivals(client, *sides["relay"]) for _ in range(3)]

    relay_p50, direct_p50 = statistics.median(times["relay"]), statistics.median(times["direct"])
    ratio = relay_p50 / direct_p50
    figures: dict[str, float | int | str] = {
        "relay_p50_ms": round(relay_p50, 1),
        "direct_p50_ms": round(direct_p50, 1),
        "relay_p95_ms": round(_p95(times["relay"]), 1),
        "direct_p95_ms": round(_p95(times["direct"]), 1),
        "overhead_p50_ms": round(relay_p50 - direct_p50, 1),
        "ratio_p50": round(ratio, 3),
        "round_ratio_range": f"{min(round_ratios):.3f}-{max(round_ratios):.3f}",
        "rounds": ROUNDS,
        "calls_per_side": len(times["relay"]),
    }
    # The stream through gunicorn: the first chunk well before the last, the chunks spread as sent.
    stream_s = PACED_PIECES * PACED_GAP_S
    first = statistics.median(run[0] for run in paced_runs)
    last = statistics.median(run[-1] for run in paced_runs)
    streamed = first < 0.5 * stream_s and last - first > 0.6 * (stream_s - PACED_GAP_S)
    figures["paced_stream_first_chunk_ms"] = round(1000 * first, 1)
    figures["paced_stream_last_chunk_ms"] = round(1000 * last, 1)
    figures["paced_stream_sent_over_ms"] = round(1000 * stream_s)
    figures["paced_stream_unbuffered"] = "yes" if streamed else "NO"
    return BenchResult(
        name="openai_relay",
        target=f"p50 of a 32-token chat completion through /v1/ <= {TARGET_RATIO:.2f}x straight to vLLM "
        f"({ROUNDS} rounds x {CALLS_PER_ROUND} calls per side, in turns), and streams passed on unbuffered",
        passed=ratio <= TARGET_RATIO and streamed,
        figures=figures,
    )
