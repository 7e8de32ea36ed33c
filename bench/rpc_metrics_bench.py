"""What the metrics cost a gRPC call: the interceptor's record of one finished call (the cached
label children, one increment, one observe) against one loopback unary call measured in the
same run (a health Check on a server built by synthtune.grpc_server, as every service is).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.result import BenchResult

TARGET_SHARE = 0.02  # the record may cost at most 2% of the cheapest real call
RECORDS = 50_000
CALLS = 2_000


def _record_us() -> float:
    from synthtune.metrics import rpc_metrics

    measured = rpc_metrics("/synthtune.bench.v1.Bench/Only", "unary")
    started = time.perf_counter()
    for _ in range(RECORDS):
        measured.done("OK", 0.001)
    return (time.perf_counter() - started) / RECORDS * 1e6


async def _call_p50_us() -> float:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from synthtune.grpc_server import create_server, start

    handle = create_server("127.0.0.1:0", [], token="bench-token-0123456789")
    await start(handle)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            times = []
            for i in range(CALLS + 200):
                started = time.perf_counter()
                await check(health_pb2.HealthCheckRequest(), timeout=5)
                if i >= 200:  # warm-up
                    times.append((time.perf_counter() - started) * 1e6)
            return statistics.median(times)
    finally:
        await handle.server.stop(0)


def run() -> BenchResult:
    call_us = asyncio.run(_call_p50_us())
    record_us = min(_record_us() for _ in range(3))
    share = record_us / call_us
    return BenchResult(
        name="rpc_metrics",
        target=f"recording one call's metrics <= {TARGET_SHARE:.0%} of a loopback gRPC call (p50)",
        passed=share <= TARGET_SHARE,
        figures={"record_us": round(record_us, 2), "loopback_call_p50_us": round(call_us, 1),
                 "share_pct": round(100 * share, 2)},
    )
