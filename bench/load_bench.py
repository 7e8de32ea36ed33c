"""load: list calls from 50 REST clients while 100 SSE streams follow live jobs, for 60 s.

Everything runs as `make up` runs it (gunicorn, the worker, the three services) with vLLM idle:
list calls never reach it, so there is none. What the streams follow is real work: JOBS
generation jobs against a loopback fake teacher (tests.support.fake_openai, in its own process)
that answers each row after TEACHER_LATENCY_S, so every job stores a few events a second for the
whole window.

- REST: CLIENTS clients, each in a loop over the list endpoints (LIST_PATHS, in turn from a
  different start), one call at a time, THINK_S between calls (a client that also reads what it
  got; 0 would measure a saturated server's queue, not a list call). One kept-alive connection
  each, Token auth. Every answer but a 200 is an error.
- SSE: STREAMS streams spread over the jobs, each from the job's start (after_seq=0), behaving as
  a browser's EventSource: when a response ends it reconnects after the server's `retry:` with
  Last-Event-ID, and stops at a 204. A transport error or a status other than 200/204 is an
  error. Every `id:` a stream received is kept, so `check_streams` can hold them against the
  stored events afterwards: no seq lost, none twice, in order.

The verdict is on the p95 of the list calls (target <= 300 ms, 0 errors, no stream lost or
repeated an event). The driver (`drive`, `check_streams`) is shared with
tests/control_plane/test_load.py.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.result import BenchResult

CLIENTS = 50
STREAMS = 100
DURATION_S = 60.0
THINK_S = 0.5
JOBS = 10
TEACHER_LATENCY_S = 0.25
TARGET_P95_MS = 300.0
LIST_PATHS = (
    "/api/v1/datasets/",
    "/api/v1/generation-jobs/",
    "/api/v1/runs/",
    "/api/v1/adapters/",
    "/api/v1/deployments/",
    "/api/v1/comparisons/",
)
# What the stack needs for this: the load comes from one user, so no throttle; every job runs at once.
STACK_ENV = {
    "SYNTHTUNE_THROTTLE_USER": "off",
    "SYNTHTUNE_THROTTLE_ANON": "off",
    "SYNTHTUNE_DATAGEN_MAX_RUNNING_JOBS": str(JOBS),
    "SYNTHTUNE_LOG_LEVEL": "WARNING",
}


@dataclass
class StreamLog:
    job_id: str
    seqs: list[int] = field(default_factory=list)
    responses: int = 0  # 200s: 1 + reconnects
    ended: bool = False  # got the 204 that says the job is over and everything was sent


@dataclass
class LoadReport:
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)
    by_path: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    streams: list[StreamLog] = field(default_factory=list)

    def percentile(self, q: float, path: str | None = None) -> float:
        ordered = sorted(self.latencies_ms if path is None else self.by_path.get(path, []))
        return ordered[round(q * (len(ordered) - 1))] if ordered else float("nan")

    @property
    def events(self) -> int:
        return sum(len(s.seqs) for s in self.streams)


def start_jobs(url: str, token: str, *, teacher_url: str, jobs: int, rows: int, name: str = "load") -> list[str]:
    """`jobs` from_instructions jobs of `rows` rows each against the teacher (datasets
    <name>-0, <name>-1 ...); their ids."""
    import httpx

    ids = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=30) as client:
        for number in range(jobs):
            body = {
                "name": f"{name}-{number}",
                "base_url": teacher_url,
                "model": "fake-model",
                "mode": "from_instructions",
                "max_tokens": 16,
                "concurrency": 1,
                "instructions": [f"Job {number}, question {row}: what is {row} times {number + 7}?"
                                 for row in range(rows)],
            }
            reply = client.post("/api/v1/generation-jobs/", json=body)
            if reply.status_code != 202:
                raise RuntimeError(f"could not start a job: {reply.status_code} {reply.text[:300]}")
            ids.append(reply.json()["job_id"])
    return ids


async def _rest_client(client, first: int, stop_at: float, think_s: float, report: LoadReport) -> None:
    turn = first
    while time.monotonic() < stop_at:
        path = LIST_PATHS[turn % len(LIST_PATHS)]
        turn += 1
        started = time.perf_counter()
        try:
            reply = await client.get(path)
            await reply.aread()
        except Exception as error:  # noqa: BLE001 - every failure is counted, none ends the run
            report.errors.append(f"GET {path}: {type(error).__name__}: {error}")
        else:
            elapsed_ms = (time.perf_counter() - started) * 1000
            report.latencies_ms.append(elapsed_ms)
            report.by_path.setdefault(path, []).append(elapsed_ms)
            if reply.status_code != 200:
                report.errors.append(f"GET {path}: {reply.status_code} {reply.text[:200]}")
        await asyncio.sleep(think_s)


async def _sse_client(client, log: StreamLog, stop_at: float, report: LoadReport) -> None:
    path = f"/api/v1/generation-jobs/{log.job_id}/events/stream/"
    retry_s = 1.0
    ended_at = time.monotonic()
    while time.monotonic() < stop_at:
        headers = {"Accept": "text/event-stream"}
        if log.seqs:
            headers["Last-Event-ID"] = str(log.seqs[-1])
        stage = "request"
        try:
            async with client.stream("GET", path, headers=headers) as reply:
                stage = "body"
                if reply.status_code == 204:
                    log.ended = True
                    return
                if reply.status_code != 200:
                    report.errors.append(f"GET {path}: {reply.status_code}")
                    return
                log.responses += 1
                async for line in reply.aiter_lines():
                    if line.startswith("id: "):
                        log.seqs.append(int(line[4:]))
                    elif line.startswith("retry: "):
                        retry_s = int(line[7:]) / 1000
        except Exception as error:  # noqa: BLE001
            report.errors.append(f"GET {path}: {type(error).__name__} in {stage} "
                                 f"{time.monotonic() - ended_at:.2f}s after the last response: {error}")
            return
        ended_at = time.monotonic()
        await asyncio.sleep(retry_s)  # as EventSource does before it reconnects


async def _drive(url: str, token: str, job_ids: list[str], clients: int, streams: int,
                 duration_s: float, think_s: float) -> LoadReport:
    import httpx

    report = LoadReport(duration_s=duration_s)
    report.streams = [StreamLog(job_ids[n % len(job_ids)]) for n in range(streams)]
    headers = {"Authorization": f"Token {token}"}
    # One pool for the streams (each holds a connection) and one per REST client, like separate users.
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    timeout = httpx.Timeout(30.0)  # > the server's 10 s keep-alive comments on a quiet stream
    stop_at = time.monotonic() + duration_s
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, limits=limits) as sse:
        rest = [httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) for _ in range(clients)]
        try:
            stream_tasks = [asyncio.create_task(_sse_client(sse, log, stop_at, report)) for log in report.streams]
            await asyncio.sleep(1.0)  # the streams connect first, then the REST load starts
            rest_tasks = [_rest_client(c, n, stop_at, think_s, report) for n, c in enumerate(rest)]
            await asyncio.gather(*rest_tasks)
            await asyncio.sleep(max(0.0, stop_at - time.monotonic()))  # without REST clients too
            # Streams still open end here: the window is over. What they received is checked.
            for task in stream_tasks:
                task.cancel()
            await asyncio.gather(*stream_tasks, return_exceptions=True)
        finally:
            for client in rest:
                await client.aclose()
    return report


def drive(url: str, token: str, *, job_ids: list[str], clients: int = CLIENTS, streams: int = STREAMS,
          duration_s: float = DURATION_S, think_s: float = THINK_S) -> LoadReport:
    """Run the load for `duration_s` against the stack at `url`; what it saw."""
    return asyncio.run(_drive(url, token, job_ids, clients, streams, duration_s, think_s))


def check_streams(url: str, token: str, report: LoadReport) -> list[str]:
    """Each stream's seqs against the job's stored events: the same seqs from the first, in order,
    none missing or repeated (a stream cut off by the window's end may stop early). Problems, in words."""
    import httpx

    problems = []
    stored: dict[str, list[int]] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=30) as client:
        for job_id in {s.job_id for s in report.streams}:
            seqs: list[int] = []
            while True:
                reply = client.get(f"/api/v1/generation-jobs/{job_id}/events/",
                                   params={"after_seq": seqs[-1] if seqs else 0, "limit": 500})
                reply.raise_for_status()
                page = [event["seq"] for event in reply.json()["events"]]
                if not page:
                    break
                seqs += page
            stored[job_id] = seqs
    for number, log in enumerate(report.streams):
        expected = stored[log.job_id][: len(log.seqs)]
        if log.seqs != expected:
            repeated = len(log.seqs) - len(set(log.seqs))
            missing = sorted(set(expected) - set(log.seqs))[:10]
            problems.append(f"stream {number} ({log.job_id}): {len(log.seqs)} events, {repeated} repeated, "
                            f"missing e.g. {missing}")
        if log.ended and log.seqs != stored[log.job_id]:
            problems.append(f"stream {number} ({log.job_id}) ended with {len(log.seqs)} of "
                            f"{len(stored[log.job_id])} events")
    return problems


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live children (gunicorn's workers), from /proc."""
    ticks, parents = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        ticks[int(stat.parent.name)] = int(fields[11]) + int(fields[12])
        parents[int(stat.parent.name)] = int(fields[1])
    family, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return sum(ticks.get(member, 0) for member in family) / os.sysconf("SC_CLK_TCK")


def _cpu_by_process(stack) -> dict[str, float]:
    """name -> CPU seconds so far, for each process of the stack and this one (the load's client)."""
    usage = {name: _cpu_s(proc.pid) for name, proc in stack.stack.procs}
    usage["load client"] = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    return usage


def run() -> BenchResult:
    from tests.support.fake_openai import fake_openai_process
    from tests.support.stack import running_stack

    rows = int(DURATION_S / TEACHER_LATENCY_S * 1.5)  # more than a job can do in the window: it stays live
    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_openai_process(latency_s=TEACHER_LATENCY_S) as teacher_url,
        running_stack(Path(tmp) / "data", **STACK_ENV) as stack,
    ):
        job_ids = start_jobs(stack.url, stack.token, teacher_url=teacher_url, jobs=JOBS, rows=rows)
        cpu_before = _cpu_by_process(stack)
        started = time.perf_counter()
        report = drive(stack.url, stack.token, job_ids=job_ids)
        elapsed = time.perf_counter() - started
        cpu = {name: used - cpu_before[name] for name, used in _cpu_by_process(stack).items()}
        problems = check_streams(stack.url, stack.token, report)

    p50, p95 = report.percentile(0.50), report.percentile(0.95)
    passed = p95 <= TARGET_P95_MS and not report.errors and not problems
    for line in (report.errors + problems)[:10]:
        print(f"    ! {line}")
    return BenchResult(
        name="load",
        target=f"list p95 <= {TARGET_P95_MS:.0f} ms at {CLIENTS} clients + {STREAMS} SSE streams, "
               "0 errors, no event lost or repeated",
        passed=passed,
        figures={
            "duration_s": round(elapsed, 1),
            "load_average_1m_after": round(os.getloadavg()[0], 1),  # the machine's, others' work included
            "list_calls": len(report.latencies_ms),
            "list_calls_per_s": round(len(report.latencies_ms) / elapsed, 1),
            "list_p50_ms": round(p50, 1),
            "list_p95_ms": round(p95, 1),
            "list_p99_ms": round(report.percentile(0.99), 1),
            **{f"p95_ms_{path.strip('/').rsplit('/', 1)[-1].replace('-', '_')}": round(report.percentile(0.95, path), 1)
               for path in LIST_PATHS},
            "list_mean_ms": round(statistics.fmean(report.latencies_ms), 1) if report.latencies_ms else 0.0,
            "errors": len(report.errors),
            "sse_events": report.events,
            "sse_responses": sum(s.responses for s in report.streams),
            "sse_problems": len(problems),
            **{f"cpu_s_{name.replace(' ', '_').replace('-', '_')}": round(used, 1) for name, used in cpu.items()},
        },
    )
