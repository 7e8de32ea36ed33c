"""Helpers for the runs tests: datasets on disk, request bodies, following runs in-process."""

from __future__ import annotations

import random

from control_plane.datasets import services as dataset_services
from control_plane.datasets.models import Dataset
from control_plane.runs.models import Run
from control_plane.runs.trainer import STATES, trainer_client
from control_plane.runs.worker import RunFollower
from synthtune.trainer.v1 import trainer_pb2 as pb
from tests.control_plane.helpers import jsonl

RUNS = "/api/v1/runs/"
ADAPTERS = "/api/v1/adapters/"
TERMINAL = ("succeeded", "failed", "cancelled")

_COLOURS = ["red", "green", "blue", "amber", "teal", "violet", "grey", "ivory"]


def training_rows(count: int = 24) -> list[dict]:
    """Short instruction rows with varied lengths (seeded: the same every time)."""
    rng = random.Random(7)
    return [
        {
            "instruction": f"Name colour number {n} from the list, please." + " Briefly." * rng.randint(0, 3),
            "output": f"The colour is {_COLOURS[n % len(_COLOURS)]}.",
        }
        for n in range(count)
    ]


def make_dataset(name: str = "colours", *, rows: int = 24, owner=None) -> Dataset:
    """A ready dataset: a real JSONL file in the data root, recorded through the upload service."""
    return dataset_services.dataset_upload(owner=owner, name=name, data=jsonl(training_rows(rows)))


def run_body(**overrides) -> dict:
    """A small, fast run on the tiny Phi-3; override anything."""
    body = {
        "datasets": ["colours"],
        "base_model": "tiny-phi3",
        "hyperparameters": {"epochs": 1, "max_length": 128, "learning_rate": 5e-3},
    }
    body.update(overrides)
    return body


def follow_to_end(run_id: str) -> Run:
    """Do the worker's job in-process: consume the run's stream until it finishes."""
    follower = RunFollower()
    for _ in range(40):  # a stream also ends at its deadline; then the worker reconnects
        follower.follow(run_id)
        run = Run.objects.get(run_id=run_id)
        if run.is_finished:
            return run
    raise AssertionError(f"run {run_id} did not finish")


def service_state(run_id: str) -> str:
    return STATES[trainer_client().call("GetRun", pb.GetRunRequest(run_id=run_id)).run.state]


def wait_for_service_step(run_id: str, *, timeout_s: float = 180) -> int:
    """Watch the run on the trainer (not the DB) until its first step event; return the step."""
    stream = trainer_client().stream("WatchRun", pb.WatchRunRequest(run_id=run_id), timeout_s=timeout_s)
    try:
        for event in stream:
            if event.WhichOneof("kind") == "step":
                return event.step.step
            if event.WhichOneof("kind") == "state_changed" and STATES[event.state_changed.state] in TERMINAL:
                raise AssertionError(f"run {run_id} ended before a step: {event.state_changed}")
    finally:
        stream.close()
    raise AssertionError(f"run {run_id}: the stream ended before a step")
