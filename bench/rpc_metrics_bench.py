"""What the metrics cost a gRPC call: the interceptor's record of one finished call (the cached
label children, one increment, one observe) against one loopback unary call measured in the
same run (a health Check on a server built by synthtune.grpc_server, as every service is).

The two sides take turns (bench.interleave), ROUNDS rounds: each round times RECORDS records and
the p50 of CALLS calls; the verdict is on the median of the per-round shares.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.interleave import MIN_ROUNDS, interleaved
from bench.result import BenchResult

TARGET_SHARE = 0.02  # the record may cost at most 2% of the cheapest real call
ROUNDS = MIN_ROUNDS
RECORDS = 20_000  # per round
CALLS = 600  # per round
WARMUP_CALLS = 200


def _record_us() -> float:
    from synthtune.metrics import rpc_metrics

    measured = rpc_metrics("/synthtune.bench.v1.Bench/Only", "unary")
    started = time.perf_counter()
    for _ in range(RECORDS):
        measured.done("OK", 0.001)
    return (time.perf_counter() - started) / RECORDS * 1e6


async def _call_p50_us(check, request) -> float:
    times = []
    for _ in range(CALLS):
        started = time.perf_counter()
        await check(request, timeout=5)
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def run() -> BenchResult:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from synthtune.grpc_server import create_server, start

    async def serve():
        handle = create_server("127.0.0.1:0", [], token="bench-token-0123456789")
        await start(handle)
        return handle, grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}")

    # One loop for every round (the server and channel live on it); the records run between its turns.
    loop = asyncio.new_event_loop()
    try:
        handle, channel = loop.run_until_complete(serve())
        check, request = health_pb2_grpc.HealthStub(channel).Check, health_pb2.HealthCheckRequest()
        for _ in range(WARMUP_CALLS):
            loop.run_until_complete(check(request, timeout=5))
        comparison = interleaved(_record_us, lambda: loop.run_until_complete(_call_p50_us(check, request)),
                                 rounds=ROUNDS)
        loop.run_until_complete(channel.close())
        loop.run_until_complete(handle.server.stop(0))
    finally:
        loop.close()
    share = comparison.ratio
    return BenchResult(
        name="rpc_metrics",
        target=f"recording one call's metrics <= {TARGET_SHARE:.0%} of a loopback gRPC call "
               f"(p50; median of {ROUNDS} rounds' shares, in turns)",
        passed=share <= TARGET_SHARE,
        figures={
            **comparison.figures("record", "loopback_call_p50", unit="us", digits=2),
            "share_pct": round(100 * share, 2),
        },
    )
