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


async def _drive_rest(url: str, token: str, clients: int, stop_at: float, think_s: float) -> LoadReport:
    import httpx

    report = LoadReport(duration_s=stop_at - time.monotonic())
    headers = {"Authorization": f"Token {token}"}
    # One client (one kept-alive connection) per REST client, like separate users.
    rest = [httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0) for _ in range(clients)]
    try:
        await asyncio.gather(*(_rest_client(c, n, stop_at, think_s, report) for n, c in enumerate(rest)))
    finally:
        for client in rest:
            await client.aclose()
    return report


async def _drive_sse(url: str, token: str, job_ids: list[str], streams: int, stop_at: float) -> LoadReport:
    import httpx

    report = LoadReport(duration_s=stop_at - time.monotonic())
    report.streams = [StreamLog(job_ids[n % len(job_ids)]) for n in range(streams)]
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    timeout = httpx.Timeout(30.0)  # > the server's 10 s keep-alive comments on a quiet stream
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=timeout,
                                 limits=limits) as sse:
        tasks = [asyncio.create_task(_sse_client(sse, log, stop_at, report)) for log in report.streams]
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        # Streams still open end here: the window is over. What they received is checked.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return report


def _sse_process(conn, url: str, token: str, job_ids: list[str], streams: int, stop_at: float) -> None:
    conn.send(asyncio.run(_drive_sse(url, token, job_ids, streams, stop_at)))
    conn.close()


def drive(url: str, token: str, *, job_ids: list[str], clients: int = CLIENTS, streams: int = STREAMS,
          duration_s: float = DURATION_S, think_s: float = THINK_S) -> LoadReport:
    """Run the load for `duration_s` against the stack at `url`; what it saw. The streams run in a
    process of their own (reading 100 streams' events would delay this event loop, and with it
    the timing of the REST calls) and connect a second before the REST clients start."""
    import multiprocessing

    stop_at = time.monotonic() + duration_s  # CLOCK_MONOTONIC: one clock for both processes
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_sse_process, args=(send, url, token, job_ids, streams, stop_at), daemon=True)
    child.start()
    try:
        time.sleep(1.0)
        report = asyncio.run(_drive_rest(url, token, clients, stop_at, think_s))
        if not receive.poll(60):
            raise RuntimeError("the SSE streams' process sent nothing")
        streams_seen: LoadReport = receive.recv()
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    report.duration_s = duration_s
    report.streams = streams_seen.streams
    report.errors += streams_seen.errors
    return report


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


LIST_ROUTES = {"datasets:datasets", "datasets:generation-jobs", "runs:runs", "runs:adapters",
               "deployments:deployments", "deployments:comparisons"}


def _server_buckets(url: str) -> dict[float, float]:
    """The control plane's own timing of the list calls (synthtune_http_request_seconds, from its
    first middleware to the response): cumulative count per bucket bound, over the six routes."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[float, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        for sample in family.samples:
            if (sample.name == "synthtune_http_request_seconds_bucket" and sample.labels.get("method") == "GET"
                    and sample.labels.get("route") in LIST_ROUTES):
                bound = float(sample.labels["le"])
                counts[bound] = counts.get(bound, 0.0) + sample.value
    return counts


def _server_p95_bound(before: dict[float, float], after: dict[float, float]) -> float:
    """The smallest bucket bound under which 95 % of the window's list calls were answered (s)."""
    window = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    total = window.get(float("inf"), 0.0)
    return next((bound for bound in sorted(window) if total and window[bound] >= 0.95 * total), float("nan"))


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
    # This process and the reaped ones (the streams' process, once drive has joined it).
    usage["load client"] = sum(sum(resource.getrusage(who)[:2]) for who in (resource.RUSAGE_SELF,
                                                                           resource.RUSAGE_CHILDREN))
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
        cpu_before, server_before = _cpu_by_process(stack), _server_buckets(stack.url)
        started = time.perf_counter()
        report = drive(stack.url, stack.token, job_ids=job_ids)
        elapsed = time.perf_counter() - started
        cpu = {name: used - cpu_before[name] for name, used in _cpu_by_process(stack).items()}
        server_p95_s = _server_p95_bound(server_before, _server_buckets(stack.url))
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
            # Inside Django: the rest of the client's p95 is the wait for a thread and the CPU.
            "server_p95_at_most_ms": round(server_p95_s * 1000, 1),
            "list_mean_ms": round(statistics.fmean(report.latencies_ms), 1) if report.latencies_ms else 0.0,
            "errors": len(report.errors),
            "sse_events": report.events,
            "sse_responses": sum(s.responses for s in report.streams),
            "sse_problems": len(problems),
            **{f"cpu_s_{name.replace(' ', '_').replace('-', '_')}": round(used, 1) for name, used in cpu.items()},
        },
    )
