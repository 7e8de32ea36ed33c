"""Load: 50 REST clients on the list endpoints and 100 SSE streams for 60 s against the running
stack (gunicorn, worker, the three services), loopback only, no vLLM: 0 errors, and every stream
got its job's events in order with none lost or repeated across its reconnects.

The streams follow ten generation jobs against a loopback fake teacher (its own process) that
answers each row after 0.25 s, so events keep coming for the whole window. Half the jobs are
short and finish inside it: their streams end with the 204 after the last event and must then
hold every stored event. The driver is bench/load_bench.py's (`make bench load` reports the
latencies; they are printed here, not asserted: `make test` runs beside other tests).
"""

from __future__ import annotations

import pytest

from bench import load_bench
from tests.support.fake_openai import fake_openai_process
from tests.support.stack import running_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SHORT_ROWS, LONG_ROWS = 40, 400  # at 0.25 s a row: about 10 s, and past the window


def test_fifty_clients_and_a_hundred_streams_for_a_minute_lose_nothing(tmp_path):
    with (
        fake_openai_process(latency_s=load_bench.TEACHER_LATENCY_S) as teacher_url,
        running_stack(tmp_path / "data", **load_bench.STACK_ENV) as stack,
    ):
        short = load_bench.start_jobs(stack.url, stack.token, teacher_url=teacher_url, jobs=5, rows=SHORT_ROWS,
                                       name="short")
        long = load_bench.start_jobs(stack.url, stack.token, teacher_url=teacher_url, jobs=5, rows=LONG_ROWS,
                                      name="long")
        report = load_bench.drive(stack.url, stack.token, job_ids=short + long, clients=50, streams=100,
                                  duration_s=60.0)
        problems = load_bench.check_streams(stack.url, stack.token, report)
        diagnosis = _diagnosis(stack, report) if any(not log.seqs for log in report.streams) else ""

    print(f"\nload: {len(report.latencies_ms)} list calls, p50 {report.percentile(0.5):.0f} ms, "
          f"p95 {report.percentile(0.95):.0f} ms; {report.events} events over "
          f"{sum(s.responses for s in report.streams)} stream responses")
    assert report.errors == [], report.errors[:10]
    assert problems == [], problems[:10]
    assert len(report.latencies_ms) >= 50 * 20, "the REST clients hardly got through"
    for log in report.streams:
        assert log.seqs, f"a stream of {log.job_id} got no event\n{diagnosis}"
        if log.job_id in short:
            assert log.ended, f"a stream of the short job {log.job_id} did not end with its job"
        else:  # streams end every SYNTHTUNE_SSE_MAX_S (25 s): the long ones resumed from Last-Event-ID
            assert log.responses >= 2 and not log.ended, log


def _diagnosis(stack, report) -> str:
    """What to look at when a stream got nothing (once in CI, not reproduced alone): how many of
    each job's streams were silent (all of them: nothing was stored; some: the streams), each such
    job as the API has it now, and the lines of the worker's, datagen's and the web's logs that
    name one of those jobs, then each log's last lines."""
    import httpx

    streams: dict[str, list[int]] = {}
    for log in report.streams:
        streams.setdefault(log.job_id, []).append(len(log.seqs))
    silent = sorted(job_id for job_id, counts in streams.items() if 0 in counts)
    lines = [f"{len(silent)} of {len(streams)} jobs had a silent stream"]
    headers = {"Authorization": f"Token {stack.token}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
        for job_id in silent:
            reply = client.get(f"/api/v1/generation-jobs/{job_id}/")
            if reply.status_code != 200:  # the diagnosis must not hide the failure it explains
                lines.append(f"job {job_id}: GET answered {reply.status_code} {reply.text[:200]}")
                continue
            job = reply.json()
            lines.append(f"job {job_id}: events per stream {streams[job_id]}; " + ", ".join(
                f"{key}={job.get(key)!r}"
                for key in ("state", "last_seq", "kept", "error", "created_at", "updated_at")))
    for name in ("worker", "datagen", "control-plane"):
        text = stack.log_text(name).splitlines()
        naming = [line for line in text if any(job_id in line for job_id in silent)]
        lines.append(f"--- {name}.log: {len(naming)} lines name a silent job, the first 20:\n"
                     + "\n".join(naming[:20]))
        lines.append(f"--- {name}.log, last lines:\n" + "\n".join(text[-15:]))
    return "\n".join(lines)
