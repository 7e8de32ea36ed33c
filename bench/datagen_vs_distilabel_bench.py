"""Rows/s of a synthtune generation job against distilabel's OpenAI pipeline, same endpoint, same concurrency.

Both sides answer the same ROWS instructions (from_instructions mode / LoadDataFromDicts),
max_tokens MAX_TOKENS, the same timeout and retries, against one local fake OpenAI endpoint
that answers every request after a fixed 100 ms. At 16 in flight the ideal is 16 / 0.1 = 160 rows/s for both.
Target: synthtune >= 1.0x distilabel, on the median of ROUNDS per-round ratios measured in
turns (bench.interleave, AB BA AB ...).

- synthtune: a real `python -m datagen_svc` process. Timed from the StartGeneration call to
  the end of the WatchGeneration stream (the dataset published under datasets/), as a user
  runs a job. 16 in flight: limits.concurrency=16, 16 workers that each start the next row
  as soon as theirs is answered.
- distilabel 1.5.3 (bench/distilabel_side.py, its own process): LoadDataFromDicts >>
  TextGeneration(OpenAILLM(base_url=the fake)). Timed around `pipeline.run(use_cache=False)`
  until it returns the Distiset (rows written as parquet and read back). 16 in flight:
  input_batch_size=16; OpenAILLM's AsyncLLM.generate sends a batch's 16 requests at once
  and the step works through its batches one after another, so between batches fewer are
  in flight.

Start-up: excluded on both sides in the same way. Imports, the service process start and
pipeline construction happen before the clock; one unmeasured warm-up run per side comes
first. What each side does per job is included: for distilabel that is forking its step
processes, waiting for the steps to load (it polls every 2.5 s) and building the Distiset;
for synthtune the RPC, job bookkeeping, the file writes and the atomic publish. So
`window_*` is also reported: rows over the span the endpoint saw requests (first arrival
to last arrival + 100 ms), i.e. throughput with each side's per-job start and finish left out.

The fake runs in this process, on its own threads: both clients are other processes and
this one only waits on them, so the fake competes with neither for the GIL. Its arrival
times give each side's peak in flight (arrivals within one latency of each other) and its
max_in_flight counter, over the whole bench, must be exactly CONCURRENCY. distilabel's
process refuses DNS look-ups and connections to anything but loopback, and keeps its
cache (and Hugging Face's) in a temporary folder.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.interleave import interleaved
from bench.result import BenchResult
from tests.support.fake_openai import FakeOpenAI

LATENCY_S = 0.1
CONCURRENCY = 16
ROWS = 320  # 2 s at the ideal rate
MAX_TOKENS = 64
ROUNDS = 5
TARGET = 1.0
IDEAL_ROWS_PER_S = CONCURRENCY / LATENCY_S
MODEL = "fake-model"
REQUEST_TIMEOUT_S = 10
# Both sides retry a failed request up to twice, from 0.5 s up to 8 s (the openai client's backoff,
# which distilabel uses): a hiccup on a busy machine then costs a round some time, not the whole bench.
MAX_RETRIES = 2
RETRY_ENV = {"SYNTHTUNE_DATAGEN_RETRY_INITIAL_S": "0.5", "SYNTHTUNE_DATAGEN_RETRY_MAX_S": "8"}
RPC_TIMEOUT_S = 10
JOB_TIMEOUT_S = 120
REPO = Path(__file__).resolve().parent.parent
# distilabel's interpreter: this one by default (`make bench` installs the `bench` extra into .venv).
DISTILABEL_PYTHON = os.environ.get("SYNTHTUNE_BENCH_DISTILABEL_PYTHON", sys.executable)

INSTRUCTIONS = [f"Question {i}: describe item number {i} in one sentence." for i in range(ROWS)]


class _Sides:
    """Both sides against one fake; each run returns rows/s and records what the fake saw."""

    def __init__(self, fake: FakeOpenAI, stub, pb, distilabel: _DistilabelWorker, data_root: Path, service_log: Path):
        self.fake = fake
        self.stub = stub
        self.pb = pb
        self.data_root = data_root
        self.service_log = service_log
        self.distilabel = distilabel
        self.runs = 0
        self.seen: dict[str, list[dict]] = {"synthtune": [], "distilabel": []}

    def synthtune(self, *, record: bool = True) -> float:
        try:
            return self._synthtune(record=record)
        except Exception as exc:
            tail = self.service_log.read_text(errors="replace")[-4000:] if self.service_log.exists() else ""
            raise RuntimeError(f"synthtune run failed: {exc}\ndatagen_svc log:\n{tail}") from exc

    def _synthtune(self, *, record: bool) -> float:
        pb = self.pb
        request = pb.StartGenerationRequest(
            dataset_name=self._name("synthtune"),
            endpoint=pb.Endpoint(base_url=self.fake.base_url, model=MODEL, request_timeout_s=REQUEST_TIMEOUT_S,
                                 max_retries=MAX_RETRIES),
            limits=pb.Limits(concurrency=CONCURRENCY),
            sampling=pb.Sampling(max_tokens=MAX_TOKENS),
            num_rows=ROWS,
            mode=pb.GENERATION_MODE_FROM_INSTRUCTIONS,
            instructions=INSTRUCTIONS,
        )
        before = len(self.fake.chat_requests())
        started = time.perf_counter()
        job = self.stub.StartGeneration(request, timeout=RPC_TIMEOUT_S).job
        rejected = [event.row_rejected.reason
                    for event in self.stub.WatchGeneration(pb.WatchGenerationRequest(job_id=job.job_id),
                                                           timeout=JOB_TIMEOUT_S)
                    if event.HasField("row_rejected")]
        seconds = time.perf_counter() - started
        job = self.stub.GetGeneration(pb.GetGenerationRequest(job_id=job.job_id), timeout=RPC_TIMEOUT_S).job
        if job.state != pb.JOB_STATE_SUCCEEDED or job.counts.kept != ROWS:
            raise RuntimeError(f"synthtune job ended {pb.JobState.Name(job.state)} with {job.counts.kept} rows: "
                               f"{job.error}; rejected rows: {rejected[:3]}")
        written = len((self.data_root / job.dataset_path).read_text().splitlines())
        if written != ROWS:
            raise RuntimeError(f"synthtune published {written} rows, not {ROWS}")
        return self._record("synthtune", before, seconds, record)

    def distilabel_run(self, *, record: bool = True) -> float:
        before = len(self.fake.chat_requests())
        answer = self.distilabel.run({
            "name": self._name("distilabel"), "base_url": self.fake.base_url, "model": MODEL,
            "instructions": INSTRUCTIONS, "concurrency": CONCURRENCY, "max_tokens": MAX_TOKENS,
            "timeout_s": REQUEST_TIMEOUT_S, "max_retries": MAX_RETRIES,
        })
        return self._record("distilabel", before, answer["seconds"], record)

    def _name(self, side: str) -> str:
        self.runs += 1
        return f"bench-{side}-{self.runs}"

    def _record(self, side: str, before: int, seconds: float, record: bool) -> float:
        requests = self.fake.chat_requests()[before:]
        if len(requests) < ROWS:  # no planning calls: one request per row, more only when retried
            raise RuntimeError(f"{side} sent {len(requests)} requests for {ROWS} rows")
        bad = [r.body.get("max_tokens") for r in requests if r.body.get("max_tokens") != MAX_TOKENS]
        if bad:
            raise RuntimeError(f"{side} sent max_tokens {bad[0]!r}, not {MAX_TOKENS}")
        arrivals = sorted(r.at for r in requests)
        if record:
            self.seen[side].append({
                "window_rows_per_s": ROWS / (arrivals[-1] - arrivals[0] + LATENCY_S),
                "peak_in_flight": _peak(arrivals),
                "retried": len(requests) - ROWS,
            })
        return ROWS / seconds


def _peak(arrivals: list[float]) -> int:
    """Most requests that arrived within one latency of each other: in flight together at the fake."""
    peak, first = 0, 0
    for last, at in enumerate(arrivals):
        while arrivals[first] <= at - LATENCY_S:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


class _DistilabelWorker:
    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc = proc
        self.log_path = log_path
        self.version = ""

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the distilabel worker exited; its log:\n{self._log_tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"distilabel run failed: {answer['error']}\n{self._log_tail()}")
        return answer

    def run(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextmanager
def _distilabel_worker(root: Path) -> Iterator[_DistilabelWorker]:
    cache = root / "cache"
    env = {
        **os.environ,
        "DISTILABEL_CACHE_DIR": str(cache / "distilabel"),
        "HF_HOME": str(cache / "huggingface"),
        "OMP_NUM_THREADS": "1",
    }
    log_path = root / "distilabel.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([DISTILABEL_PYTHON, "-m", "bench.distilabel_side"], cwd=REPO, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    worker = _DistilabelWorker(proc, log_path)
    try:
        worker.version = worker.read()["ready"]  # distilabel is imported
        yield worker
    finally:
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run() -> BenchResult:
    from synthtune.datagen.v1 import datagen_pb2 as pb
    from synthtune.datagen.v1 import datagen_pb2_grpc
    from synthtune.grpc_client import open_channel
    from tests.support.procs import TEST_GRPC_TOKEN, running_service

    with tempfile.TemporaryDirectory(prefix="bench-vs-distilabel-") as tmp:
        root = Path(tmp)
        with (
            FakeOpenAI(model=MODEL, latency_s=LATENCY_S) as fake,
            running_service("datagen_svc", listen_var="SYNTHTUNE_DATAGEN_LISTEN",
                            env={"SYNTHTUNE_DATA_ROOT": str(root / "data"), **RETRY_ENV},
                            log_path=root / "datagen.log") as service,
            _distilabel_worker(root) as worker,
        ):
            channel = open_channel(service.address, token=TEST_GRPC_TOKEN)
            try:
                sides = _Sides(fake, datagen_pb2_grpc.DatagenServiceStub(channel), pb, worker, root / "data", service.log_path)
                sides.synthtune(record=False)  # warm-up: first job's lazy imports, first fork
                sides.distilabel_run(record=False)
                comparison = interleaved(sides.synthtune, sides.distilabel_run, rounds=ROUNDS)
            finally:
                channel.close()
            max_in_flight = fake.max_in_flight
            version = worker.version
    if max_in_flight != CONCURRENCY:
        raise RuntimeError(f"the fake saw {max_in_flight} requests in flight at most, not {CONCURRENCY}")
    figures = comparison.figures("synthtune", "distilabel", unit="rows_per_s")
    window = {side: statistics.median(run["window_rows_per_s"] for run in runs) for side, runs in sides.seen.items()}
    window_ratios = [s["window_rows_per_s"] / d["window_rows_per_s"]
                     for s, d in zip(sides.seen["synthtune"], sides.seen["distilabel"])]
    return BenchResult(
        name="datagen_vs_distilabel",
        target=f"synthtune rows/s >= {TARGET}x distilabel {version} at concurrency {CONCURRENCY}, "
               f"{LATENCY_S * 1000:.0f} ms latency (median of {ROUNDS} rounds in turns)",
        passed=comparison.ratio >= TARGET,
        figures={
            **figures,
            "target": TARGET,
            "synthtune_fraction_of_ideal": round(statistics.median(comparison.candidate) / IDEAL_ROWS_PER_S, 3),
            "distilabel_fraction_of_ideal": round(statistics.median(comparison.baseline) / IDEAL_ROWS_PER_S, 3),
            "window_synthtune_rows_per_s": round(window["synthtune"]),
            "window_distilabel_rows_per_s": round(window["distilabel"]),
            "window_ratio": round(statistics.median(window_ratios), 3),
            "peak_in_flight_synthtune": max(run["peak_in_flight"] for run in sides.seen["synthtune"]),
            "peak_in_flight_distilabel": max(run["peak_in_flight"] for run in sides.seen["distilabel"]),
            "fake_max_in_flight": max_in_flight,
            "retried_requests_synthtune": sum(run["retried"] for run in sides.seen["synthtune"]),
            "retried_requests_distilabel": sum(run["retried"] for run in sides.seen["distilabel"]),
            "rows": ROWS,
            "ideal_rows_per_s": IDEAL_ROWS_PER_S,
        },
    )

