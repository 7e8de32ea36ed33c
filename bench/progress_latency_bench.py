"""Progress latency: a trainer step to an SSE client, through the whole stack.

The path: the training child emits a step -> the trainer service numbers it
(the event's time) -> WatchRun stream -> the control-plane worker stores it ->
the SSE endpoint -> this client. Everything runs as `make up` runs it. The
latency of each live step event is (received - event time); same clock.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.result import BenchResult
from bench.trainer_data import models, varied_rows

TARGET_P95_MS = 100.0


def run() -> BenchResult:
    from synthtune.client import Client
    from tests.support.stack import running_stack

    model_root = models()
    latencies_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp), SYNTHTUNE_MODELS_ROOT=str(model_root)) as stack:
        with Client(stack.url, token=stack.token) as client:
            client.request("POST", "/api/v1/datasets/", json={"name": "latency", "rows": varied_rows(120, max_words=40)})
            run = client.start_run(datasets=["latency"], base_model="tiny-phi3", hyperparameters={
                "epochs": 3, "batch_size": 1, "gradient_accumulation_steps": 1, "packing": False,
                "max_length": 128, "eval_fraction": 0.0, "device": "cpu"})
            for event in client.follow_run(run["run_id"]):
                if event.event == "step":
                    sent = datetime.fromisoformat(event.data["time"]).timestamp()
                    latencies_ms.append((time.time() - sent) * 1000)
    latencies_ms.sort()
    p95 = latencies_ms[int(0.95 * (len(latencies_ms) - 1))]
    return BenchResult(
        name="progress_latency",
        target=f"trainer step -> SSE client p95 <= {TARGET_P95_MS:.0f} ms",
        passed=p95 <= TARGET_P95_MS,
        figures={"steps": len(latencies_ms), "p50_ms": round(statistics.median(latencies_ms), 1),
                 "p95_ms": round(p95, 1), "max_ms": round(latencies_ms[-1], 1)},
    )
