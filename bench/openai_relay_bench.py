"""openai_relay: what the /v1/ inference relay adds to a 32-token chat completion.

Everything runs as `make up` runs it (gunicorn gthread, the worker, the services) in front of a
real vLLM CPU server with the tiny Phi-3. Candidate: POST /v1/chat/completions on the control
plane (Bearer token, the relay's model -> target table, one pooled connection to vLLM).
Baseline: the same body POSTed straight to vLLM. Both are greedy with ignore_eos, so every call
generates exactly 32 tokens, and both use one kept-alive httpx client.

The calls are made in turns (bench.interleave's calls_in_turns) over ROUNDS rounds of
CALLS_PER_ROUND calls per side, so drift on the machine hits both alike. Each round gives the
ratio of the two sides' medians; the verdict is on the median of those, and their range and
each side's spread are printed.

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

from bench.interleave import calls_in_turns
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
            timed = calls_in_turns([lambda side=side: _timed_call(client, *sides[side]) for side in sides],
                                   rounds=ROUNDS, calls=CALLS_PER_ROUND, warmup=WARMUP)
            paced_runs = [_paced_arrivals(client, *sides["relay"]) for _ in range(3)]

    comparison = timed.compare(0, 1)
    ratio = comparison.ratio
    figures: dict[str, object] = {
        **comparison.figures("relay", "direct", unit="p50_ms", digits=1),
        "relay_p95_ms": round(timed.p95(0), 1),
        "direct_p95_ms": round(timed.p95(1), 1),
        "overhead_p50_ms": round(comparison.difference, 1),
        "calls_per_side": len(timed.calls[0]),
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
