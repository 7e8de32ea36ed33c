"""Generation throughput: the real generator at concurrency 16 vs a sequential loop.

Both talk to the same local fake endpoint that answers every request after a
fixed 100 ms, so the ideal is 16 / 0.1 = 160 rows/s concurrently and 10 rows/s
sequentially. Target (issue 2): at least 0.85 x 160 = 136 rows/s, on the median of ROUNDS
runs; the concurrent and sequential runs take turns (bench.interleave), and the ratio between
them, each side's spread and the per-round ratios' range are printed.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.interleave import MIN_ROUNDS, interleaved
from bench.result import BenchResult
from tests.support.fake_openai import fake_openai_process

LATENCY_S = 0.1
CONCURRENCY = 16
ROWS = 640  # ~4 s at the target rate
SEQUENTIAL_ROWS = 30  # ~3 s
IDEAL_ROWS_PER_S = CONCURRENCY / LATENCY_S
TARGET_ROWS_PER_S = 0.85 * IDEAL_ROWS_PER_S
BENCH_TOKEN = "bench-grpc-token-not-used-0123456789"
ROUNDS = MIN_ROUNDS


def run() -> BenchResult:
    with fake_openai_process(latency_s=LATENCY_S) as base_url:
        comparison = interleaved(lambda: asyncio.run(_concurrent(base_url)),
                                 lambda: asyncio.run(_sequential(base_url)), rounds=ROUNDS)
    concurrent = statistics.median(comparison.candidate)
    return BenchResult(
        name="datagen",
        target=f"concurrency {CONCURRENCY} at {LATENCY_S * 1000:.0f} ms latency >= {TARGET_ROWS_PER_S:.0f} rows/s "
               f"(median of {ROUNDS} runs, in turns with the sequential loop)",
        passed=concurrent >= TARGET_ROWS_PER_S,
        figures={
            **comparison.figures("concurrent", "sequential", unit="rows_per_s", digits=1),
            "fraction_of_ideal": round(concurrent / IDEAL_ROWS_PER_S, 3),
            "target_fraction_of_ideal": round(TARGET_ROWS_PER_S / IDEAL_ROWS_PER_S, 2),
            "rows": ROWS,
            "sequential_rows": SEQUENTIAL_ROWS,
        },
    )


def _client_config(base_url: str, *, concurrency: int):
    from datagen_svc.openai_client import ClientConfig

    return ClientConfig(
        base_url=base_url,
        model="fake-model",
        token="",
        skip_tls_verify=False,
        timeout_s=10,
        max_retries=0,
        concurrency=concurrency,
        requests_per_minute=0,
        backoff_initial_s=0.1,
        backoff_max_s=1,
    )


async def _sequential(base_url: str) -> float:
    """The old app's way: one request at a time, each row written as it comes."""
    from datagen_svc.openai_client import ChatClient

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "seq.jsonl"
        async with ChatClient(_client_config(base_url, concurrency=1)) as client:
            await client.chat(messages=[{"role": "user", "content": "warm-up"}])
            started = time.perf_counter()
            with out.open("w") as handle:
                for i in range(SEQUENTIAL_ROWS):
                    result = await client.chat(messages=[{"role": "user", "content": f"Row {i}"}])
                    handle.write(result.content + "\n")
                    handle.flush()
            return SEQUENTIAL_ROWS / (time.perf_counter() - started)


async def _concurrent(base_url: str) -> float:
    """A real job through JobManager and the generator: rows kept per second, start to published file."""
    os.environ.setdefault("SYNTHTUNE_GRPC_TOKEN", BENCH_TOKEN)
    from datagen_svc.config import load_settings
    from datagen_svc.jobs import TERMINAL, JobState
    from datagen_svc.manager import JobManager
    from datagen_svc.spec import Endpoint, GenerationSpec, Limits, Mode

    with tempfile.TemporaryDirectory() as tmp:
        manager = JobManager(settings=load_settings(data_root=Path(tmp)))
        manager.recover()
        spec = GenerationSpec(
            dataset_name="bench",
            endpoint=Endpoint(base_url=base_url, model="fake-model", request_timeout_s=10),
            limits=Limits(concurrency=CONCURRENCY),
            num_rows=ROWS,
            mode=Mode.FIXED,
            prompt_template="Write one sentence about benchmarks.",
        )
        started = time.perf_counter()
        job = manager.start(spec)
        async for _ in manager.watch(job.job_id, after_seq=0):
            pass
        elapsed = time.perf_counter() - started
        assert job.state in TERMINAL
        if job.state is not JobState.SUCCEEDED:
            raise RuntimeError(f"bench job ended {job.state}: {job.error}")
        return job.counts.kept / elapsed
