"""Training runs: their record and event log, on disk under the data root.

Layout, per run:
    <data_root>/runs/<run_id>/run.json      the run (atomically rewritten)
    <data_root>/runs/<run_id>/config.json   what the child process trains (RunConfig as JSON)
    <data_root>/runs/<run_id>/events.jsonl  numbered events, append-only (synthtune.eventlog)
    <data_root>/runs/<run_id>/child.log     the child process's stderr (library logs, tracebacks)
    <data_root>/runs/<run_id>/checkpoints/  training checkpoints (trainer_svc.checkpoints)

States follow OpenAI's fine-tuning jobs:
validating -> queued -> running -> succeeded | failed | cancelled.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from synthtune.errors import InvalidArgument, NotFound
from synthtune.eventlog import Event, EventLog
from synthtune.files import atomic_write_bytes

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the trainer service stopped while this run was training"


class RunState(StrEnum):
    VALIDATING = "validating"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Run:
    run_id: str
    base_model: str
    state: RunState = RunState.VALIDATING
    error: str = ""
    datasets: list[dict[str, Any]] = field(default_factory=list)  # path, sha256, rows, format, size_bytes
    eval_datasets: list[dict[str, Any]] = field(default_factory=list)  # the same, of a separate eval split
    plan: dict[str, Any] = field(default_factory=dict)  # training.RunPlan.to_dict()
    prompt_format: str = ""
    train_rows: int = 0
    eval_rows: int = 0
    truncated_rows: int = 0
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    adapter_name: str = ""
    adapter_path: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    resumes: int = 0  # automatic resumes from a checkpoint so far
    resumed_from_step: int = 0  # the step the latest resume went on from (0: never resumed)
    pid: int = 0  # of the child process while it runs
    job_name: str = ""  # its latest TrainJob (the kubeflow launcher)
    events_offset: int = 0  # bytes of that TrainJob's child-events.jsonl already taken in
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)

    @property
    def distributed(self) -> dict[str, Any]:
        """The validated num_nodes, processes_per_node and world_size ({} before validation)."""
        return self.plan.get("hyperparameters", {}).get("distributed", {})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        data = dict(data)
        data["state"] = RunState(data["state"])
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["updated_at"] = datetime.fromisoformat(data["updated_at"])
        return cls(**data)


class RunStore:
    """Every run, in memory and on disk. One asyncio loop; not thread-safe."""

    def __init__(self, data_root: Path):
        self.folder = data_root / "runs"
        self._runs: dict[str, Run] = {}
        self._logs: dict[str, EventLog] = {}

    def load(self) -> list[Run]:
        """Read every run folder; returns the runs that were not finished (left by a stop or crash)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        unfinished = []
        for run_dir in sorted(p for p in self.folder.iterdir() if (p / "run.json").is_file()):
            try:
                run = Run.from_json(json.loads((run_dir / "run.json").read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError):
                logger.exception("skipping unreadable run folder", extra={"run_dir": run_dir.name})
                continue
            self._runs[run.run_id] = run
            self._logs[run.run_id] = EventLog(run_dir / "events.jsonl")
            if run.state not in TERMINAL:
                unfinished.append(run)
        return sorted(unfinished, key=lambda r: r.created_at)

    def run_dir(self, run_id: str) -> Path:
        return self.folder / run_id

    def get(self, run_id: str) -> Run:
        if not run_id:
            raise InvalidArgument("run_id is required.", field="run_id")
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound(f"no training run {run_id!r}.", field="run_id")
        return run

    def list(self) -> list[Run]:
        """Every run, newest first."""
        return sorted(self._runs.values(), key=lambda r: r.created_at, reverse=True)

    def log(self, run_id: str) -> EventLog:
        return self._logs[run_id]

    def add(self, run: Run) -> None:
        self._runs[run.run_id] = run
        self._logs[run.run_id] = EventLog(self.run_dir(run.run_id) / "events.jsonl")
        self.save(run)
        self.append(run, "state_changed", {"state": str(run.state), "error": ""})

    def forget(self, run: Run) -> None:
        """Remove a run that never got past validation: nothing of it stays."""
        self._runs.pop(run.run_id, None)
        self._logs.pop(run.run_id, None)
        shutil.rmtree(self.run_dir(run.run_id), ignore_errors=True)

    def save(self, run: Run) -> None:
        run.updated_at = _now()
        data = json.dumps(run.to_json(), ensure_ascii=False, indent=1).encode()
        atomic_write_bytes(self.run_dir(run.run_id) / "run.json", data)

    def set_state(self, run: Run, state: RunState, *, error: str = "") -> None:
        """Change state, persist, then emit state_changed (in that order)."""
        run.state = state
        run.error = error
        if state in TERMINAL:
            run.pid = 0
        self.save(run)
        self.append(run, "state_changed", {"state": str(state), "error": error})

    def append(self, run: Run, kind: str, data: dict[str, Any]) -> Event:
        return self._logs[run.run_id].append(kind, data)
