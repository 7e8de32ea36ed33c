"""Generation jobs: their state, and an append-only event log, on disk under the data root.

Layout, per job:
    <data_root>/jobs/datagen/<job_id>/job.json      the job (atomically rewritten; never the token)
    <data_root>/jobs/datagen/<job_id>/events.jsonl  numbered events, append-only

States: queued -> running -> succeeded | failed | cancelled; a failed or
cancelled job may be resumed (-> queued again). Events are numbered from 1 per
job and never renumbered, so a watcher resumes with `after_seq`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from synthtune.errors import InvalidArgument, NotFound
from synthtune.eventlog import Event, EventLog
from synthtune.files import atomic_write_bytes

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
RESUMABLE = frozenset({JobState.FAILED, JobState.CANCELLED})


class EventKind(StrEnum):
    STATE_CHANGED = "state_changed"  # {"state", "error"}
    PROGRESS = "progress"  # {"counts", "target_rows", "usage"}
    ROW_REJECTED = "row_rejected"  # {"index", "instruction", "kind", "reason", "check"}
    DATASET_WRITTEN = "dataset_written"  # {"dataset_path", "sha256", "size_bytes", "counts", "metadata_path", "report"}
    JUDGE_FAILED = "judge_failed"  # {"index", "instruction", "reason"}: the row is kept unjudged


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Counts:
    kept: int = 0
    dropped: int = 0  # rejected by a quality check
    failed: int = 0  # no usable answer from the endpoint


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Job:
    job_id: str
    dataset_name: str
    dataset_path: str  # relative to the data root
    target_rows: int
    params: dict[str, Any]  # GenerationSpec.public_params(): no token
    state: JobState = JobState.QUEUED
    counts: Counts = field(default_factory=Counts)
    usage: Usage = field(default_factory=Usage)
    error: str = ""
    sha256: str = ""
    size_bytes: int = 0
    judge_usage: Usage = field(default_factory=Usage)
    # FilterReport's JSON: {"dropped_by": {check: rows}, "near_dup_clusters", "judged", "judge_failures"}
    report: dict[str, Any] = field(default_factory=dict)
    metadata_path: str = ""  # relative to the data root; set once the dataset is written
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = str(self.state)
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(
            **{
                **data,
                "state": JobState(data["state"]),
                "counts": Counts(**data["counts"]),
                "usage": Usage(**data["usage"]),
                "judge_usage": Usage(**data.get("judge_usage", {})),
                "created_at": datetime.fromisoformat(data["created_at"]),
                "updated_at": datetime.fromisoformat(data["updated_at"]),
            }
        )

    def progress_data(self) -> dict[str, Any]:
        return {
            "counts": dataclasses.asdict(self.counts),
            "target_rows": self.target_rows,
            "usage": dataclasses.asdict(self.usage),
            "judge_usage": dataclasses.asdict(self.judge_usage),
            "report": self.report,
        }


class JobStore:
    """Every datagen job, in memory and on disk. Single event loop; not thread-safe."""

    def __init__(self, data_root: Path):
        self.folder = data_root / "jobs" / "datagen"
        self._jobs: dict[str, Job] = {}
        self._logs: dict[str, EventLog] = {}

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> list[Job]:
        """Read every job folder; returns the jobs that were queued or running (left by a crash)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        unfinished = []
        for job_dir in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            try:
                job = Job.from_json(json.loads((job_dir / "job.json").read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError):
                logger.exception("skipping unreadable job folder", extra={"job_dir": job_dir.name})
                continue
            self._jobs[job.job_id] = job
            self._logs[job.job_id] = EventLog(job_dir / "events.jsonl")
            if job.state not in TERMINAL:
                unfinished.append(job)
        return unfinished

    # -- reads -----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job, or NotFound; an empty id is InvalidArgument."""
        if not job_id:
            raise InvalidArgument("job_id is required.", field="job_id")
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no generation job {job_id!r}.", field="job_id")
        return job

    def list(self) -> list[Job]:
        """Every job, newest first."""
        return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def log(self, job_id: str) -> EventLog:
        """The job's numbered event log (synthtune.eventlog)."""
        return self._logs[job_id]

    # -- writes ----------------------------------------------------------------------------

    def create(
        self, *, dataset_name: str, dataset_path: str, target_rows: int, params: dict[str, Any]
    ) -> Job:
        job = Job(
            job_id=uuid.uuid4().hex,
            dataset_name=dataset_name,
            dataset_path=dataset_path,
            target_rows=target_rows,
            params=params,
        )
        self._jobs[job.job_id] = job
        self._logs[job.job_id] = EventLog(self.folder / job.job_id / "events.jsonl")
        self.save(job)
        self.append(job.job_id, EventKind.STATE_CHANGED, {"state": str(job.state), "error": ""})
        return job

    def save(self, job: Job) -> None:
        job.updated_at = _now()
        data = json.dumps(job.to_json(), ensure_ascii=False, indent=1).encode()
        atomic_write_bytes(self.folder / job.job_id / "job.json", data)

    def set_state(self, job: Job, state: JobState, *, error: str = "") -> None:
        """Change state, persist, and emit a state_changed event (in that order)."""
        job.state = state
        job.error = error
        self.save(job)
        self.append(job.job_id, EventKind.STATE_CHANGED, {"state": str(state), "error": error})

    def append(self, job_id: str, kind: EventKind, data: dict[str, Any]) -> Event:
        """Number, persist (flushed) and publish one event."""
        return self._logs[job_id].append(str(kind), data)
