"""The trainer as a real gRPC service process: lifecycle, events, cancel, crashes, restarts."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import grpc
import pytest

from synthtune.grpc_client import open_channel
from synthtune.trainer.v1 import trainer_pb2 as pb
from synthtune.trainer.v1 import trainer_pb2_grpc as pb_grpc
from tests.support.procs import START_RUN_TIMEOUT_S, TEST_GRPC_TOKEN, running_service, start_service
from tests.trainer_svc.conftest import fixed_answer_rows, wait_for_run, write_dataset

pytestmark = pytest.mark.slow
TERMINAL = {pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_FAILED, pb.RUN_STATE_CANCELLED}
FAST = pb.Hyperparameters(epochs=1, max_length=128, learning_rate=5e-3, device="cpu")
SLOW = pb.Hyperparameters(epochs=50, max_length=128, batch_size=1, gradient_accumulation_steps=1, device="cpu")


def _env(data_root: Path, models: Path) -> dict[str, str]:
    return {"SYNTHTUNE_DATA_ROOT": str(data_root), "SYNTHTUNE_MODELS_ROOT": str(models),
            "SYNTHTUNE_TRAINER_CANCEL_GRACE_S": "30"}


@pytest.fixture
def trainer(data_root, tiny_models, tmp_path):
    with running_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN", env=_env(data_root, tiny_models),
                         log_path=tmp_path / "trainer.log") as service:
        yield service


@pytest.fixture(scope="module")
def validator(tmp_path_factory, tiny_models):
    """One trainer for the bad-input tests: they must leave no run behind, so they can share it."""
    root = tmp_path_factory.mktemp("validator")
    with running_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN", env=_env(root, tiny_models),
                         log_path=root / "trainer.log") as service:
        yield service, root


def _stub(address: str) -> pb_grpc.TrainerServiceStub:
    return pb_grpc.TrainerServiceStub(open_channel(address, token=TEST_GRPC_TOKEN))


def _start(stub, data_root: Path, hyperparameters=FAST, **fields) -> pb.Run:
    datasets = fields.pop("datasets", None) or [write_dataset(data_root, "fixed", fixed_answer_rows(40))]
    request = pb.StartRunRequest(base_model="tiny-phi3", datasets=datasets, hyperparameters=hyperparameters, **fields)
    return stub.StartRun(request, timeout=START_RUN_TIMEOUT_S).run


def test_a_run_streams_its_progress_and_exports_an_adapter(trainer, data_root):
    stub = _stub(trainer.address)
    run = _start(stub, data_root, adapter_name="heron")
    assert run.state == pb.RUN_STATE_QUEUED and run.prompt_format == "chat"
    assert run.datasets[0].rows == 40 and len(run.datasets[0].sha256) == 64
    assert run.train_rows + run.eval_rows == 40 and json.loads(run.config_json)["hyperparameters"]

    events = list(stub.WatchRun(pb.WatchRunRequest(run_id=run.run_id), timeout=300))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    states = [e.state_changed.state for e in events if e.WhichOneof("kind") == "state_changed"]
    assert states == [pb.RUN_STATE_VALIDATING, pb.RUN_STATE_QUEUED, pb.RUN_STATE_RUNNING, pb.RUN_STATE_SUCCEEDED]
    steps = [e.step for e in events if e.WhichOneof("kind") == "step"]
    assert steps and steps[-1].step == steps[-1].max_steps and all(s.loss > 0 and s.tokens_per_s > 0 for s in steps)
    [evaluated] = [e.eval for e in events if e.WhichOneof("kind") == "eval"]  # 1 epoch: one eval
    assert evaluated.step == evaluated.max_steps == steps[-1].step and evaluated.eval_loss > 0
    assert evaluated.metric == "eval_loss" and evaluated.is_best and evaluated.HasField("eval_mean_token_accuracy")
    assert not evaluated.HasField("eval_chrf")  # no generation evals asked for
    exported = next(e.exported for e in events if e.WhichOneof("kind") == "exported")
    assert exported.adapter_name.startswith("heron") and (data_root / exported.adapter_path / "manifest.json").is_file()

    done = stub.GetRun(pb.GetRunRequest(run_id=run.run_id), timeout=10).run
    assert done.state == pb.RUN_STATE_SUCCEEDED and done.adapter_path == exported.adapter_path
    assert json.loads(done.metrics_json)
    # A watcher that reconnects after seq N gets exactly the rest.
    tail = list(stub.WatchRun(pb.WatchRunRequest(run_id=run.run_id, after_seq=events[-3].seq), timeout=30))
    assert [e.seq for e in tail] == [e.seq for e in events[-2:]]


@pytest.mark.parametrize(("hyperparameters", "field"), [
    (pb.Hyperparameters(learning_rate=0), "hyperparameters.learning_rate"),
    (pb.Hyperparameters(learning_rate=-1), "hyperparameters.learning_rate"),
    (pb.Hyperparameters(epochs=10_000), "hyperparameters.epochs"),
    (pb.Hyperparameters(max_length=100_000), "hyperparameters.max_length"),
    (pb.Hyperparameters(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]), "hyperparameters.target_modules"),
    (pb.Hyperparameters(target_modules=["nothing_like_this"]), "hyperparameters.target_modules"),
])
def test_bad_hyperparameters_are_refused_before_queueing(validator, hyperparameters, field):
    trainer, data_root = validator
    stub = _stub(trainer.address)
    with pytest.raises(grpc.RpcError) as info:
        _start(stub, data_root, hyperparameters=hyperparameters)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field.split(".")[-1] in info.value.details() or "target" in info.value.details()
    assert stub.ListRuns(pb.ListRunsRequest(), timeout=10).runs == []  # nothing half-made
    assert not any((data_root / "runs").iterdir())  # not even an empty folder


@pytest.mark.parametrize(("fields", "hint"), [
    ({"datasets": ["datasets/missing.jsonl"]}, "missing"),
    ({"datasets": ["../etc/passwd.jsonl"]}, ".."),
    ({"datasets": ["/etc/passwd"]}, "relative"),
    ({"base_model": "../models/x"}, ".."),
    # Found by the gRPC fuzz: names the file system can't hold were an OSError at the first stat (INTERNAL).
    ({"base_model": "x" * 256}, "longer than 200"),
    ({"datasets": ["datasets/" + "x" * 256 + ".jsonl"]}, "255 bytes"),
    ({"adapter_name": "../x"}, "adapter_name"),
])
def test_bad_names_are_refused(validator, fields, hint):
    trainer, data_root = validator
    stub = _stub(trainer.address)
    request = pb.StartRunRequest(base_model="tiny-phi3", datasets=["datasets/fixed.jsonl"], hyperparameters=FAST)
    write_dataset(data_root, "fixed", fixed_answer_rows(10))
    for key, value in fields.items():
        if key == "datasets":
            del request.datasets[:]
            request.datasets.extend(value)
        else:
            setattr(request, key, value)
    with pytest.raises(grpc.RpcError) as info:
        stub.StartRun(request, timeout=START_RUN_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and hint in info.value.details()


def test_an_empty_dataset_is_refused(validator):
    trainer, data_root = validator
    path = write_dataset(data_root, "empty", "")
    with pytest.raises(grpc.RpcError) as info:
        _start(_stub(trainer.address), data_root, datasets=[path])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _stub(trainer.address).ListRuns(pb.ListRunsRequest(), timeout=10).runs == []


def test_cancel_stops_a_running_run_and_the_queue_moves_on(trainer, data_root):
    stub = _stub(trainer.address)
    first = _start(stub, data_root, hyperparameters=SLOW)
    second = _start(stub, data_root, hyperparameters=SLOW)
    assert stub.GetRun(pb.GetRunRequest(run_id=second.run_id), timeout=10).run.queue_position == 1
    wait_for_run(stub, first.run_id, lambda r: r.step >= 2)
    # A queued run is cancelled at once; the running one within a step.
    assert stub.CancelRun(pb.CancelRunRequest(run_id=second.run_id), timeout=10).run.state == pb.RUN_STATE_CANCELLED
    stub.CancelRun(pb.CancelRunRequest(run_id=first.run_id), timeout=10)
    run = wait_for_run(stub, first.run_id, lambda r: r.state in TERMINAL, timeout_s=60)
    assert run.state == pb.RUN_STATE_CANCELLED and run.step < run.max_steps and not run.adapter_path
    assert not (data_root / "adapters").exists() or not any((data_root / "adapters").iterdir())
    with pytest.raises(grpc.RpcError) as again:
        stub.CancelRun(pb.CancelRunRequest(run_id=first.run_id), timeout=10)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_killing_the_child_fails_the_run_and_the_service_keeps_serving(trainer, data_root):
    stub = _stub(trainer.address)
    run = _start(stub, data_root, hyperparameters=SLOW)
    wait_for_run(stub, run.run_id, lambda r: r.step >= 1)
    pid = json.loads((data_root / "runs" / run.run_id / "run.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    failed = wait_for_run(stub, run.run_id, lambda r: r.state in TERMINAL, timeout_s=30)
    assert failed.state == pb.RUN_STATE_FAILED and "SIGKILL" in failed.error
    after = _start(stub, data_root)  # still serving, and the queue is free again
    assert wait_for_run(stub, after.run_id, lambda r: r.state in TERMINAL).state == pb.RUN_STATE_SUCCEEDED


def test_a_restart_mid_run_reports_interrupted_and_queued_runs_carry_on(data_root, tiny_models, tmp_path):
    env = _env(data_root, tiny_models)
    service = start_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN", env=env, log_path=tmp_path / "a.log")
    try:
        stub = _stub(service.address)
        running = _start(stub, data_root, hyperparameters=SLOW)
        queued = _start(stub, data_root)
        wait_for_run(stub, running.run_id, lambda r: r.step >= 1)
    finally:
        service.proc.send_signal(signal.SIGKILL)  # a crash: no graceful shutdown
        service.proc.wait()
    with running_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN", env=env,
                         log_path=tmp_path / "b.log") as restarted:
        stub = _stub(restarted.address)
        interrupted = stub.GetRun(pb.GetRunRequest(run_id=running.run_id), timeout=10).run
        assert interrupted.state == pb.RUN_STATE_FAILED and "interrupted" in interrupted.error
        assert wait_for_run(stub, queued.run_id, lambda r: r.state in TERMINAL).state == pb.RUN_STATE_SUCCEEDED
