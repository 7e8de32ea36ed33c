"""The trainer's Prometheus metrics, fed from the events the run's child process reports."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge

from synthtune.metrics import StateCollector
from trainer_svc.runs import RunState

TOKENS = Counter("synthtune_trainer_tokens_total", "Tokens trained on (trl's num_tokens), over every run.")
STEPS = Counter("synthtune_trainer_steps_total", "Optimizer steps trained, over every run.")
TOKENS_PER_S = Gauge(
    "synthtune_trainer_tokens_per_second",
    "Training throughput at the latest optimizer step of the run training now; 0 while none trains.",
    multiprocess_mode="mostrecent",
)
LAST_RUN_TOKENS_PER_S = Gauge(
    "synthtune_trainer_last_run_tokens_per_second",
    "Training throughput of the last run that finished, over its optimizer steps.",
    multiprocess_mode="mostrecent",
)


class Throughput:
    """One run's bookkeeping: the child reports num_tokens cumulatively, the counter wants increments."""

    def __init__(self) -> None:
        self._tokens_seen = 0

    def step(self, event: dict[str, Any]) -> None:
        tokens = int(event.get("num_tokens") or 0)
        if tokens > self._tokens_seen:
            TOKENS.inc(tokens - self._tokens_seen)
            self._tokens_seen = tokens
        STEPS.inc()
        if (rate := event.get("tokens_per_s")) is not None:
            TOKENS_PER_S.set(float(rate))

    def finished(self, metrics: dict[str, Any]) -> None:
        """The run is over (its state changes next): its summary becomes the last run's throughput."""
        if (rate := metrics.get("tokens_per_s")) is not None:
            LAST_RUN_TOKENS_PER_S.set(float(rate))
        TOKENS_PER_S.set(0)

    def ended(self) -> None:
        """The child process is gone: nothing trains now."""
        TOKENS_PER_S.set(0)


def run_states(manager) -> StateCollector:
    """`synthtune_trainer_runs{state}`: every run `manager` knows (they survive restarts), read at scrape time."""
    return StateCollector(
        "synthtune_trainer_runs", "Fine-tuning runs this service knows, by state.",
        [str(state) for state in RunState], lambda: (str(run.state) for run in manager.list()),
    )
