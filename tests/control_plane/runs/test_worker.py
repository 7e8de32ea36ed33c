"""The worker for runs: catching up from the trainer's stream after the last stored seq,
runs the trainer forgot, and a real worker process following a run to its adapter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from control_plane.runs import services
from control_plane.runs.models import Adapter, Run, RunEvent
from control_plane.runs.trainer import event_record, trainer_client
from control_plane.runs.worker import RunFollower
from synthtune.trainer.v1 import trainer_pb2 as pb
from tests.control_plane.helpers import wait_for
from tests.control_plane.runs.factories import RunFactory
from tests.control_plane.runs.helpers import RUNS, TERMINAL, make_dataset, run_body, service_state
from tests.support import procs
from tests.support.postgres import database_url


@pytest.mark.django_db
def test_follow_resumes_after_the_last_stored_seq(api, trainer):
    make_dataset()
    run_id = api.post(RUNS, run_body(), format="json").json()["run_id"]
    wait_for(
        lambda: service_state(run_id) in TERMINAL, what="the run to finish on the trainer", timeout_s=120
    )

    # A previous worker stored the first three events, then the control plane went down.
    stream = trainer_client().stream("WatchRun", pb.WatchRunRequest(run_id=run_id), timeout_s=10)
    for _, message in zip(range(3), stream):
        services.run_event_record(run_id=run_id, event=event_record(message))
    stream.close()
    assert Run.objects.get(run_id=run_id).last_seq == 3

    RunFollower().follow(run_id)  # the restarted worker catches up

    run = Run.objects.get(run_id=run_id)
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, run.last_seq + 1)) and len(seqs) > 5  # none lost, none twice
    assert run.state == "succeeded" and Adapter.objects.get(run=run).weights_sha256
    assert run.metrics.get("train_loss") and run.config  # copied from GetRun once finished
    assert RunFollower().pending() == []


@pytest.mark.django_db
def test_a_run_the_trainer_forgot_is_marked_failed(trainer):
    run = RunFactory(run_id="0" * 32)
    RunFollower().follow(run.run_id)
    run.refresh_from_db()
    assert run.state == "failed" and "no longer knows" in run.error and run.finished_at


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_process_follows_a_run_to_its_adapter(api, trainer, data_root, tmp_path: Path):
    """A real `python -m control_plane worker` (runs are one of its followers) on the test DB."""
    make_dataset()
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "SYNTHTUNE_DATA_ROOT": str(data_root),
        "SYNTHTUNE_TRAINER_ADDR": trainer.address,
        "SYNTHTUNE_DATAGEN_ADDR": f"127.0.0.1:{procs.free_port()}",
        "SYNTHTUNE_GRPC_TOKEN": procs.TEST_GRPC_TOKEN,
        "SYNTHTUNE_WORKER_POLL_S": "0.2",
    }
    with log.open("ab") as handle:
        worker = subprocess.Popen(
            [sys.executable, "-m", "control_plane", "worker"], cwd=procs.REPO, env=env, stdout=handle,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        run_id = api.post(RUNS, run_body(), format="json").json()["run_id"]
        run = wait_for(
            lambda: (r := Run.objects.get(run_id=run_id)).is_finished and r,
            what="the worker to store the run's end",
            timeout_s=120,
        )
        assert run.state == "succeeded", (run.error, log.read_text()[-2000:])
        assert Adapter.objects.get(run=run).manifest["run_id"] == run_id
        seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
        assert seqs == list(range(1, run.last_seq + 1))
        assert wait_for(
            lambda: Run.objects.get(run_id=run_id).metrics.get("train_loss"), what="final metrics"
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
    assert worker.returncode == 0, log.read_text()[-2000:]
    assert '"runs"' in log.read_text()  # the worker listed the runs follower at start
