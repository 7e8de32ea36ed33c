"""Datagen's Prometheus metrics (served with the shared ones by synthtune.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

from datagen_svc.jobs import JobState
from synthtune.metrics import StateCollector

ROWS = Counter(
    "synthtune_datagen_rows_total",
    "Rows generated, by outcome: kept (written to a dataset), dropped (refused by a quality check), "
    "failed (no usable answer from the endpoint).",
    ["outcome"],
)
ROWS_KEPT = ROWS.labels("kept")
ROWS_DROPPED = ROWS.labels("dropped")
ROWS_FAILED = ROWS.labels("failed")


def job_states(manager) -> StateCollector:
    """`synthtune_datagen_jobs{state}`: every job `manager` knows (they survive restarts), read at scrape time."""
    return StateCollector(
        "synthtune_datagen_jobs", "Generation jobs this service knows, by state.",
        [str(state) for state in JobState], lambda: (str(job.state) for job in manager.list()),
    )
