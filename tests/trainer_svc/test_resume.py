"""Checkpoints and resume: a run that dies goes on from its newest checkpoint and ends with the
adapter an uninterrupted run would have exported.

In-process (trainer_svc.training.main): a crash after a checkpoint keeps it, a second `main`
on the same config resumes from it, and the two adapters agree. As a service: a child killed
by SIGKILL, and a service killed mid-run, both resume by themselves and succeed; a run that
has used its automatic resumes fails, and is resumed by hand.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from synthtune.grpc_client import open_channel
from synthtune.trainer.v1 import trainer_pb2 as pb
from synthtune.trainer.v1 import trainer_pb2_grpc as pb_grpc
from tests.support.procs import START_RUN_TIMEOUT_S, TEST_GRPC_TOKEN, running_service, start_service
from tests.trainer_svc.conftest import (
    ANSWER,
    HELD_OUT,
    fixed_answer_rows,
    generate,
    wait_for_run,
    write_dataset,
)
from trainer_svc.checkpoints import checkpoints_dir, latest_checkpoint
from trainer_svc.training import main

pytestmark = pytest.mark.slow
# One row per optimizer step, three epochs of 40 rows: 120 steps of a few ms each.
HYPER = {"epochs": 3, "max_length": 128, "learning_rate": 5e-3, "packing": False, "batch_size": 1,
         "gradient_accumulation_steps": 1, "seed": 11, "eval_fraction": 0.0}


class Crash(Exception):
    """Stands for the process dying between two steps."""


def _weights(data_root: Path, adapter: str) -> dict:
    from safetensors.torch import load_file

    return load_file(data_root / "adapters" / adapter / "adapter_model.safetensors")


def test_a_crashed_run_resumes_from_its_checkpoint_and_ends_with_the_same_adapter(make_config, data_root,
                                                                                 tiny_models):
    import torch

    dataset = write_dataset(data_root, "fixed", fixed_answer_rows(40))
    training = {**HYPER, "checkpoint_steps": 25, "checkpoint_keep": 2}
    whole = main(make_config(run_id="whole", datasets=[dataset], adapter_name="whole", training=training))
    assert whole.status == "succeeded"
    assert not checkpoints_dir(data_root, "whole").exists()  # deleted once the adapter is exported

    # This one asks to keep its checkpoints once it has succeeded.
    config = make_config(run_id="crashy", datasets=[dataset], adapter_name="crashy",
                         training={**training, "keep_checkpoints": True})

    def crash_at_step_60(event):
        if event["type"] == "step" and event["step"] == 60:
            raise Crash

    with pytest.raises(Crash):
        main(config, on_event=crash_at_step_60)
    folder = checkpoints_dir(data_root, "crashy")
    # Every 25 steps and at each epoch's end (step 40), the newest two kept.
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-40", "checkpoint-50"]
    assert latest_checkpoint(folder).name == "checkpoint-50"

    events: list[dict] = []
    resumed = main(config, on_event=events.append)
    assert resumed.status == "succeeded" and resumed.metrics["steps"] == whole.metrics["steps"] == 120
    assert [e["step"] for e in events if e["type"] == "resumed"] == [50]
    assert [e["step"] for e in events if e["type"] == "step"] == list(range(51, 121))
    assert latest_checkpoint(folder).name == "checkpoint-120"  # kept, as asked: the Trainer saves the last step too
    a, b = _weights(data_root, whole.export.name), _weights(data_root, resumed.export.name)
    assert a.keys() == b.keys()
    # Stated tolerance: rtol 1e-5, atol 1e-6 (float32 reduction order may differ elsewhere);
    # measured here: bit-identical, max |a - b| = 0.0.
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    # And it learned: the fixed answer, stopping by itself, on all 10 held-out instructions.
    assert generate(tiny_models / "tiny-phi3", resumed.export.path, HELD_OUT) == [(ANSWER, True)] * len(HELD_OUT)


def test_an_incomplete_checkpoint_is_never_resumed_from(tmp_path):
    folder = tmp_path / "checkpoints"
    (folder / "checkpoint-10").mkdir(parents=True)
    (folder / "checkpoint-10" / "trainer_state.json").write_text("{}")
    (folder / "checkpoint-20").mkdir()  # cut short while saving: no trainer_state.json
    assert latest_checkpoint(folder).name == "checkpoint-10"
    assert latest_checkpoint(tmp_path / "none") is None


def _env(data_root: Path, models: Path) -> dict[str, str]:
    return {"SYNTHTUNE_DATA_ROOT": str(data_root), "SYNTHTUNE_MODELS_ROOT": str(models),
            "SYNTHTUNE_TRAINER_CHECKPOINT_STEPS": "10"}


def _start(stub, data_root: Path) -> pb.Run:
    dataset = write_dataset(data_root, "fixed", fixed_answer_rows(40))
    hyper = pb.Hyperparameters(device="cpu", **HYPER)
    return stub.StartRun(pb.StartRunRequest(base_model="tiny-phi3", datasets=[dataset], hyperparameters=hyper),
                         timeout=START_RUN_TIMEOUT_S).run


def _wait_for_checkpoint(data_root: Path, run_id: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while latest_checkpoint(checkpoints_dir(data_root, run_id)) is None:
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)


def _messages(data_root: Path, run_id: str) -> list[str]:
    lines = (data_root / "runs" / run_id / "events.jsonl").read_text().splitlines()
    return [e["data"].get("message", "") for e in map(json.loads, lines) if e["kind"] == "log"]


def _resumed_events(stub, run_id: str) -> list[pb.Resumed]:
    """The run's `resumed` events, as WatchRun streams them (the run has ended, so the stream does)."""
    events = stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_seq=0), timeout=30)
    return [event.resumed for event in events if event.WhichOneof("kind") == "resumed"]


def test_a_run_resumes_when_its_trainer_service_comes_back(data_root, tiny_models, tmp_path):
    env = _env(data_root, tiny_models)
    service = start_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN", env=env, log_path=tmp_path / "a.log")
    try:
        stub = pb_grpc.TrainerServiceStub(open_channel(service.address, token=TEST_GRPC_TOKEN))
        run = _start(stub, data_root)
        _wait_for_checkpoint(data_root, run.run_id)
    finally:
        service.proc.send_signal(signal.SIGKILL)  # a crash: no graceful shutdown; the child dies with it
        service.proc.wait()
    assert latest_checkpoint(checkpoints_dir(data_root, run.run_id)) is not None  # kept for the next start
    with running_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN", env=env,
                         log_path=tmp_path / "b.log") as restarted:
        stub = pb_grpc.TrainerServiceStub(open_channel(restarted.address, token=TEST_GRPC_TOKEN))
        done = wait_for_run(stub, run.run_id)
        assert done.state == pb.RUN_STATE_SUCCEEDED, (done.error, restarted.log_text()[-2000:])
        resumed = _resumed_events(stub, run.run_id)
    assert [(e.step, e.resumes) for e in resumed] == [(done.resumed_from_step, 1)] and done.resumed_from_step > 0
    messages = _messages(data_root, run.run_id)
    assert any("trainer service stopped while it was training; it resumes from step" in m for m in messages)


def _kill_child(data_root: Path, run_id: str) -> None:
    os.kill(json.loads((data_root / "runs" / run_id / "run.json").read_text())["pid"], signal.SIGKILL)


def test_a_killed_process_resumes_by_itself_then_by_hand_once_it_has_failed(data_root, tiny_models, tmp_path):
    import grpc

    env = {**_env(data_root, tiny_models), "SYNTHTUNE_TRAINER_MAX_AUTO_RESUMES": "1"}
    with running_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN", env=env,
                         log_path=tmp_path / "trainer.log") as trainer:
        stub = pb_grpc.TrainerServiceStub(open_channel(trainer.address, token=TEST_GRPC_TOKEN))
        run = _start(stub, data_root)
        _wait_for_checkpoint(data_root, run.run_id)
        _kill_child(data_root, run.run_id)  # 1st death: the one automatic resume
        wait_for_run(stub, run.run_id, lambda r: r.resumed_from_step > 0)  # a fresh child: imports again
        _kill_child(data_root, run.run_id)  # 2nd death: no automatic resume left, the run fails
        failed = wait_for_run(stub, run.run_id)
        assert failed.state == pb.RUN_STATE_FAILED and "SIGKILL" in failed.error and failed.resumes == 1
        assert latest_checkpoint(checkpoints_dir(data_root, run.run_id)) is not None  # kept for a resume

        again = stub.ResumeRun(pb.ResumeRunRequest(run_id=run.run_id), timeout=10).run
        assert again.state == pb.RUN_STATE_QUEUED and again.error == ""
        done = wait_for_run(stub, run.run_id)
        assert done.state == pb.RUN_STATE_SUCCEEDED, (done.error, trainer.log_text()[-2000:])
        assert done.step == done.max_steps == 120 and done.adapter_path and done.resumed_from_step >= 10
        with pytest.raises(grpc.RpcError) as not_failed:
            stub.ResumeRun(pb.ResumeRunRequest(run_id=run.run_id), timeout=10)
        assert not_failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "only a failed run" in not_failed.value.details()
        resumed = _resumed_events(stub, run.run_id)
    assert [e.resumes for e in resumed] == [1, 1] and resumed[-1].step == done.resumed_from_step  # auto, then by hand
    messages = _messages(data_root, run.run_id)
    assert any("killed by SIGKILL; it resumes from step" in m and "automatic resume 1 of 1" in m for m in messages)
    assert any(m.startswith("resume requested: it goes on from step ") for m in messages), messages
