"""How long checkpoints stay: a failed run keeps them for a resume by hand, for
SYNTHTUNE_TRAINER_FAILED_CHECKPOINTS_HOURS, then the trainer deletes them; other runs' are
not its business here (succeeded and cancelled runs delete theirs as they end)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.procs import TEST_GRPC_TOKEN
from trainer_svc.checkpoints import checkpoints_dir
from trainer_svc.config import load_settings
from trainer_svc.manager import RunManager
from trainer_svc.runs import Run, RunState


def _settings(data_root, *, hours: float):
    return load_settings(grpc_token=TEST_GRPC_TOKEN, data_root=data_root, failed_checkpoints_hours=hours)


def _run_with_a_checkpoint(manager: RunManager, run_id: str, state: RunState) -> None:
    manager.store.add(Run(run_id=run_id, base_model="tiny-phi3"))
    manager.store.set_state(manager.store.get(run_id), state, error="boom" if state == RunState.FAILED else "")
    (checkpoints_dir(manager.settings.data_root, run_id) / "checkpoint-10").mkdir(parents=True)


def test_a_failed_runs_checkpoints_go_once_its_time_to_be_resumed_by_hand_is_over(data_root):
    manager = RunManager(settings=_settings(data_root, hours=72))
    _run_with_a_checkpoint(manager, "failed", RunState.FAILED)
    _run_with_a_checkpoint(manager, "kept", RunState.SUCCEEDED)  # asked to keep them (keep_checkpoints)
    _run_with_a_checkpoint(manager, "training", RunState.RUNNING)
    now = datetime.now(UTC)

    manager.remove_expired_checkpoints(now=now + timedelta(hours=71))
    assert checkpoints_dir(data_root, "failed").exists()  # still time for a resume by hand

    manager.remove_expired_checkpoints(now=now + timedelta(hours=73))
    assert not checkpoints_dir(data_root, "failed").exists()
    assert checkpoints_dir(data_root, "kept").exists() and checkpoints_dir(data_root, "training").exists()


def test_zero_hours_deletes_a_failed_runs_checkpoints_at_once(data_root):
    manager = RunManager(settings=_settings(data_root, hours=0))
    _run_with_a_checkpoint(manager, "failed", RunState.FAILED)
    manager.remove_expired_checkpoints()
    assert not checkpoints_dir(data_root, "failed").exists()
