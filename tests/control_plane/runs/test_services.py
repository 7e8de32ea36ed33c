"""Run services: events applied to the run, the adapter recorded from its manifest, replays
ignored, and no orphan run left on the trainer when recording fails."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from django.db import DatabaseError

from control_plane.core.events import EventRecord
from control_plane.runs import services
from control_plane.runs.models import Adapter, Run, RunEvent
from control_plane.runs.params import RunParams
from control_plane.runs.trainer import trainer_client
from synthtune.trainer.v1 import trainer_pb2 as pb
from tests.control_plane.helpers import wait_for
from tests.control_plane.runs.factories import RunFactory
from tests.control_plane.runs.helpers import make_dataset, service_state

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(seq: int, kind: str, **payload) -> EventRecord:
    return EventRecord(seq=seq, type=kind, payload=payload, time=T0)


def step(seq: int, n: int, loss: float) -> EventRecord:
    return event(seq, "step", step=n, max_steps=4, epoch=n / 4, loss=loss, learning_rate=1e-3, grad_norm=0.5,
                 tokens_per_s=900.0, eta_s=4.0 - n)  # fmt: skip


def exported(seq: int, name: str) -> EventRecord:
    return event(seq, "exported", adapter_path=f"adapters/{name}", adapter_name=name, weights_sha256="cd" * 32,
                 merged_model_path="")  # fmt: skip


def test_events_update_the_run_and_replays_are_ignored():
    run = RunFactory(state="queued", max_steps=0)
    record = services.run_event_record
    assert record(run_id=run.run_id, event=event(1, "state_changed", state="running", error=""))
    assert record(run_id=run.run_id, event=step(2, 1, 3.5))
    assert record(run_id=run.run_id, event=step(3, 2, 3.0))
    assert record(run_id=run.run_id, event=event(4, "eval", step=2, epoch=1.0, eval_loss=3.2))
    assert not record(run_id=run.run_id, event=step(3, 2, 99.0))  # a replay after a reconnect
    run.refresh_from_db()
    assert (run.state, run.step, run.max_steps, run.epoch, run.last_seq) == ("running", 2, 4, 1.0, 4)
    assert run.metrics["loss"] == 3.0 and run.metrics["eval_loss"] == 3.2 and run.percent == 50
    assert run.started_at == T0 and run.finished_at is None
    assert record(run_id=run.run_id, event=event(5, "state_changed", state="failed", error="child died: OOM"))
    run.refresh_from_db()
    assert run.state == "failed" and run.error == "child died: OOM" and run.finished_at == T0
    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == [1, 2, 3, 4, 5]


def test_an_eval_event_from_the_stream_keeps_its_metrics_and_the_run_the_latest():
    from control_plane.runs.selectors import run_eval_history
    from control_plane.runs.trainer import event_record

    run = RunFactory(state="running", max_steps=4)
    message = pb.RunEvent(seq=1, run_id=run.run_id, eval=pb.EvalMetrics(
        step=2, max_steps=4, epoch=0.5, eval_loss=1.5, eval_mean_token_accuracy=0.5, eval_exact_match=0.25,
        eval_chrf=40.0, metric="eval_chrf", is_best=True, runtime_s=0.2, generation_s=0.1))
    recorded = event_record(message)
    assert recorded.payload["eval_exact_match"] == 0.25 and "eval_judge_score" not in recorded.payload
    assert services.run_event_record(run_id=run.run_id, event=recorded)
    later = event(2, "eval", step=4, max_steps=4, epoch=1.0, eval_loss=1.2, eval_mean_token_accuracy=0.6,
                  eval_exact_match=0.0, eval_chrf=30.0, metric="eval_chrf", is_best=False)
    assert services.run_event_record(run_id=run.run_id, event=later)
    run.refresh_from_db()
    assert run.metrics["eval_loss"] == 1.2 and run.metrics["eval_exact_match"] == 0.0  # the latest, 0 kept
    # The run page's eval chart: 0..1 series (chrF / 100), and the best eval is the one marked best.
    history = run_eval_history(run=run)
    assert history["series"]["eval_chrf"] == [[2, 0.4], [4, 0.3]] and "eval_judge_score" not in history["series"]
    assert history["best"] == {"step": 2, "metric": "eval_chrf", "value": 40.0}


def test_a_resumed_event_from_the_stream_records_where_the_run_went_on_from():
    from control_plane.runs.trainer import event_record

    run = RunFactory(state="running", last_seq=1)
    message = pb.RunEvent(seq=2, run_id=run.run_id, resumed=pb.Resumed(step=50, resumes=1))
    assert services.run_event_record(run_id=run.run_id, event=event_record(message))
    run.refresh_from_db()
    assert (run.resumed_from_step, run.resumes) == (50, 1)
    assert RunEvent.objects.get(run=run, seq=2).as_dict()["payload"] == {"step": 50, "resumes": 1}


def test_exported_records_the_adapter_from_its_manifest(data_root):
    run = RunFactory(base_model="org/tiny-phi3")
    manifest = {
        "name": "faq-v1",
        "run_id": run.run_id,
        "base_model": {"id": "org/tiny-phi3", "architecture": "Phi3ForCausalLM"},
        "prompt_format": "chat",
        "metrics": {"train_loss": 1.25},
        "weights_sha256": "cd" * 32,
    }
    (data_root / "adapters" / "faq-v1").mkdir(parents=True)
    (data_root / "adapters" / "faq-v1" / "manifest.json").write_text(json.dumps(manifest))
    services.run_event_record(run_id=run.run_id, event=exported(1, "faq-v1"))
    adapter = Adapter.objects.get()
    assert (adapter.name, adapter.path, adapter.run, adapter.base_model, adapter.prompt_format) == (
        "faq-v1", "adapters/faq-v1", run, "org/tiny-phi3", "chat"
    )  # fmt: skip
    assert adapter.manifest == manifest and adapter.weights_sha256 == "cd" * 32
    run.refresh_from_db()
    assert run.adapter == adapter and run.metrics["train_loss"] == 1.25 and run.prompt_format == "chat"


def test_an_adapter_whose_manifest_is_not_in_our_data_root_is_still_recorded_with_a_warning(caplog):
    run = RunFactory()
    with caplog.at_level(logging.WARNING, logger="control_plane.runs.services"):
        services.run_event_record(run_id=run.run_id, event=exported(1, "elsewhere-v1"))
    adapter = Adapter.objects.get()
    assert adapter.manifest == {} and adapter.base_model == run.base_model
    assert any(
        "manifest unreadable" in r.message and "SYNTHTUNE_DATA_ROOT" in r.reason for r in caplog.records
    )


def test_run_fail_marks_unfinished_runs_only():
    running, done = RunFactory(state="running"), RunFactory(state="succeeded")
    services.run_fail(run_id=running.run_id, reason="gone")
    services.run_fail(run_id=done.run_id, reason="gone")
    running.refresh_from_db()
    done.refresh_from_db()
    assert (running.state, running.error) == ("failed", "gone") and running.finished_at
    assert (done.state, done.error) == ("succeeded", "")


def test_a_failed_db_write_cancels_the_run_on_the_trainer(trainer, monkeypatch):
    """Nothing half-written: the trainer accepted, our write failed, so the run must not train unseen."""
    make_dataset()

    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(Run.objects, "create", broken)
    params = RunParams(
        datasets=["colours"], base_model="tiny-phi3", hyperparameters={"epochs": 1, "max_length": 128}
    )
    with pytest.raises(DatabaseError):
        services.run_start(owner=None, params=params)
    assert not Run.objects.exists()
    [orphan] = trainer_client().call("ListRuns", pb.ListRunsRequest()).runs
    assert wait_for(lambda: service_state(orphan.run_id) == "cancelled", what="the orphan to be cancelled")
