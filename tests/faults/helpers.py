"""Helpers for the fault tests: a generation job through the REST API of a running stack, and
checks that nothing was lost or stored twice."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.control_plane.helpers import wait_for as _wait_for

TEACHER_TOKEN = "teacher-token-5b1e7c"
INSTRUCTIONS = [f"Explain topic number {i}." for i in range(24)]


# 60 s unless told: here a stack's processes are killed and restarted.
wait_for = functools.partial(_wait_for, timeout_s=60)
RUN_ENDS = ("succeeded", "failed", "cancelled")
# A short tiny-phi3 run, one row per step, no held-out split.
FAST_RUN = {"max_length": 128, "batch_size": 1, "gradient_accumulation_steps": 1, "packing": False,
            "eval_fraction": 0, "device": "cpu"}


def generate(api, teacher, name: str) -> str:
    reply = api.post("/api/v1/generation-jobs/", json={
        "name": name, "base_url": teacher.base_url, "model": teacher.model, "token": TEACHER_TOKEN,
        "mode": "from_instructions", "instructions": INSTRUCTIONS, "concurrency": 1, "max_tokens": 16,
    })
    assert reply.status_code == 202, reply.text
    return reply.json()["job_id"]


def job(api, job_id: str) -> dict:
    return api.get(f"/api/v1/generation-jobs/{job_id}/").json()


def start_run(api, dataset: str, adapter_name: str, **hyperparameters) -> str:
    """A tiny-phi3 run on `dataset` (FAST_RUN, with `hyperparameters` over it): its run id."""
    started = api.post("/api/v1/runs/", json={
        "datasets": [dataset], "base_model": "tiny-phi3", "adapter_name": adapter_name,
        "hyperparameters": {**FAST_RUN, **hyperparameters},
    })
    assert started.status_code == 202, started.text
    return started.json()["run_id"]


def run_ended(api, run_id: str, *, what: str = "the run to end") -> dict:
    """The run once it has ended (3 minutes at most: a training process starts in each)."""
    return wait_for(lambda: (r := api.get(f"/api/v1/runs/{run_id}/").json())["state"] in RUN_ENDS and r,
                    what=what, timeout_s=180)


def assert_events_whole(api, url: str, last_seq: int | None = None) -> list[dict]:
    """The stored events are 1..last_seq (or 1..their count), each once."""
    events = api.get(url, params={"limit": 1000}).json()["events"]
    assert [e["seq"] for e in events] == list(range(1, (last_seq or len(events)) + 1))
    return events


def assert_dataset_whole(api, stack, name: str) -> list[dict]:
    """The dataset is ready, its file is the one recorded, with every instruction once."""
    dataset = api.get(f"/api/v1/datasets/{name}/").json()
    assert dataset["status"] == "ready" and dataset["rows"] == len(INSTRUCTIONS), dataset
    path = stack.stack.config.data_root / "datasets" / f"{name}.jsonl"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == dataset["sha256"]
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["instruction"] for r in rows) == sorted(INSTRUCTIONS)
    assert not path.with_name(path.name + ".partial").exists()
    return rows


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


@contextmanager
def disk_full(folder: Path, *, leave_bytes: int = 0) -> Iterator[None]:
    """Fill the file system under `folder` (a small tmpfs) but for about `leave_bytes`, with one
    hidden filler file, deleted afterwards."""
    filler = folder / ".filler"
    try:
        with filler.open("wb") as handle:
            size = max(0, free_bytes(folder) - leave_bytes)
            chunk = b"\0" * (1 << 20)
            while size > 0:
                handle.write(chunk[: min(size, len(chunk))])
                size -= len(chunk)
        assert free_bytes(folder) <= leave_bytes + 4096
        yield
    finally:
        filler.unlink(missing_ok=True)


def files_under(folder: Path) -> list[str]:
    """Every file and folder under `folder` (hidden ones included), the filler left out."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != ".filler")
