"""Judging throughput: rows scored per second by the Judge at concurrency 16, reported.

The judge endpoint is the local fake in its own process, answering every
"judgement" request with a valid verdict after a fixed 100 ms, so the ideal is
16 / 0.1 = 160 rows/s; the figure is how close the Judge and the client get
(prompt building, JSON schema request, parsing, the connection pool). The issue
sets no threshold: report only.
"""

from __future__ import annotations

import asyncio
import time

from bench.result import BenchResult
from tests.support.fake_openai import fake_openai_process

LATENCY_S = 0.1
CONCURRENCY = 16
ROWS = 640  # ~4 s at the ideal rate
IDEAL_ROWS_PER_S = CONCURRENCY / LATENCY_S
# A typical row: a one-line instruction and an answer of ~120 words.
INSTRUCTION = "Explain, for a beginner, how a bicycle's gears make climbing a hill easier (row {i})."
OUTPUT = " ".join(["Lower gears trade speed for force, so each pedal stroke moves you less far but costs less."] * 8)


def run() -> BenchResult:
    with fake_openai_process(latency_s=LATENCY_S, judge=True) as base_url:
        rows_per_s = asyncio.run(_judge_rows(base_url))
    return BenchResult(
        name="judge",
        target=f"reported: judged rows/s at concurrency {CONCURRENCY} and {LATENCY_S * 1000:.0f} ms latency "
               f"as a fraction of the ideal {IDEAL_ROWS_PER_S:.0f} rows/s",
        passed=True,
        figures={
            "judged_rows_per_s": round(rows_per_s, 2),
            "ideal_rows_per_s": IDEAL_ROWS_PER_S,
            "fraction_of_ideal": round(rows_per_s / IDEAL_ROWS_PER_S, 3),
            "rows": ROWS,
            "concurrency": CONCURRENCY,
        },
    )


async def _judge_rows(base_url: str) -> float:
    from datagen_svc.judge import Judge
    from datagen_svc.openai_client import ChatClient, ClientConfig

    config = ClientConfig(
        base_url=base_url,
        model="fake-model",
        token="",
        skip_tls_verify=False,
        timeout_s=10,
        max_retries=0,
        concurrency=CONCURRENCY,
        requests_per_minute=0,
        backoff_initial_s=0.1,
        backoff_max_s=1,
    )
    async with ChatClient(config) as client:
        judge = Judge(client=client)

        async def score(i: int) -> float:
            verdict = await judge.score(instruction=INSTRUCTION.format(i=i), output=OUTPUT)
            return verdict.mean

        # Warm-up: one full round opens every connection and settles the judge's structured mode.
        await asyncio.gather(*(score(i) for i in range(CONCURRENCY)))
        rows = iter(range(ROWS))
        means: list[float] = []

        async def worker() -> None:
            for i in rows:  # one shared iterator: each worker takes the next row, like the generator's
                means.append(await score(i))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    if len(means) != ROWS or set(means) != {4.0} or not judge.structured:
        raise RuntimeError(f"the bench judge misbehaved: {len(means)} verdicts, means {sorted(set(means))}")
    return ROWS / elapsed
