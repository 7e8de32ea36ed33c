"""Training past one process: torchrun on gloo (CPU), rank 0 alone reporting and exporting.

- Two processes with accumulation 1 train the same adapter as one process with
  accumulation 2 (dropout 0, an even number of rows), with one export and every step once;
- two torchrun agents on loopback with the PET_* variables Kubeflow Trainer sets: node 0
  alone exports;
- the service with SYNTHTUNE_TRAINER_LAUNCHER=torchrun trains a 2-process run, cancels one
  collectively, and the local launcher refuses a run of several processes before queueing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from synthtune.grpc_client import open_channel
from synthtune.readiness import free_port
from synthtune.trainer.v1 import trainer_pb2 as pb
from synthtune.trainer.v1 import trainer_pb2_grpc as pb_grpc
from tests.support.procs import REPO, START_RUN_TIMEOUT_S, TEST_GRPC_TOKEN, running_service
from tests.trainer_svc.conftest import fixed_answer_rows, run_config, wait_for_run, write_dataset
from trainer_svc.training import main

pytestmark = pytest.mark.slow
# 40 rows, one per micro-step: 20 optimizer steps of 2 rows either way.
TRAINING = {"epochs": 1, "max_length": 128, "learning_rate": 5e-3, "packing": False, "batch_size": 1,
            "eval_fraction": 0.0, "seed": 5}
LORA = {"dropout": 0.0}


def _torchrun(config_path: Path, *, env: dict[str, str] | None = None, standalone: bool = True,
              processes: int = 2) -> subprocess.Popen:
    args = ["--standalone", f"--nproc-per-node={processes}"] if standalone else []
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", *args, "-m", "trainer_svc.training",
         "--config", str(config_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def _events(proc: subprocess.Popen, timeout_s: float = 300) -> list[dict]:
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, err[-3000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _write_config(tmp_path: Path, config) -> Path:
    path = tmp_path / f"{config.run_id}.json"
    path.write_text(json.dumps(config.to_dict()))
    return path


def _adapters(data_root: Path) -> list[str]:
    return sorted(p.name for p in (data_root / "adapters").iterdir() if not p.name.startswith("."))


def _weights(data_root: Path, name: str) -> dict:
    from safetensors.torch import load_file

    return load_file(data_root / "adapters" / name / "adapter_model.safetensors")


def test_two_processes_train_what_one_does_with_twice_the_accumulation(data_root, tiny_models, tmp_path):
    import torch

    dataset = write_dataset(data_root, "fixed", fixed_answer_rows(40))
    one = main(run_config(data_root, tiny_models, run_id="one", datasets=[dataset], adapter_name="one", lora=LORA,
                          training={**TRAINING, "gradient_accumulation_steps": 2}))
    two = run_config(data_root, tiny_models, run_id="two", datasets=[dataset], adapter_name="two", lora=LORA,
                     training={**TRAINING, "gradient_accumulation_steps": 1},
                     distributed={"processes_per_node": 2})
    events = _events(_torchrun(_write_config(tmp_path, two)))

    kinds = [e["type"] for e in events]
    assert kinds.count("exported") == 1 and kinds.count("finished") == 1 and kinds.count("started") == 1
    started = events[kinds.index("started")]
    assert (started["world_size"], started["effective_batch_size"]) == (2, 2)
    assert [e["step"] for e in events if e["type"] == "step"] == list(range(1, 21))  # each once: rank 0 only
    assert _adapters(data_root) == ["one-v1", "two-v1"]
    manifest = json.loads((data_root / "adapters" / "two-v1" / "manifest.json").read_text())
    assert manifest["hyperparameters"]["distributed"] == {
        "num_nodes": 1, "processes_per_node": 2, "world_size": 2, "effective_batch_size": 2}
    a, b = _weights(data_root, one.export.name), _weights(data_root, "two-v1")
    assert a.keys() == b.keys()
    for key in a:  # stated tolerance, for gloo's all-reduce order; measured here: bit-identical (max diff 0.0)
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)


def test_two_nodes_with_kubeflows_variables_export_once_from_node_0(data_root, tiny_models, tmp_path):
    dataset = write_dataset(data_root, "fixed", fixed_answer_rows(40))
    config = run_config(data_root, tiny_models, run_id="nodes", datasets=[dataset], adapter_name="nodes",
                        training={**TRAINING, "gradient_accumulation_steps": 1},
                        distributed={"num_nodes": 2, "processes_per_node": 1})
    path = _write_config(tmp_path, config)
    port = str(free_port())
    # What Kubeflow Trainer v2 sets on each node's pod; torchrun reads PET_* as its arguments.
    agents = [_torchrun(path, standalone=False, env={
        "PET_NNODES": "2", "PET_NODE_RANK": str(node), "PET_NPROC_PER_NODE": "1",
        "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": port}) for node in (0, 1)]
    node0, node1 = (_events(agent) for agent in agents)
    assert [e["type"] for e in node0].count("exported") == 1 and node0[-1]["status"] == "succeeded"
    assert node1 == []  # world rank 1: no events, no export
    assert _adapters(data_root) == ["nodes-v1"]


def _service_env(data_root: Path, models: Path, launcher: str) -> dict[str, str]:
    return {"SYNTHTUNE_DATA_ROOT": str(data_root), "SYNTHTUNE_MODELS_ROOT": str(models),
            "SYNTHTUNE_TRAINER_LAUNCHER": launcher, "SYNTHTUNE_TRAINER_CANCEL_GRACE_S": "60"}


def _start(stub, data_root: Path, **hyperparameters) -> pb.Run:
    dataset = write_dataset(data_root, "fixed", fixed_answer_rows(40))
    hyper = pb.Hyperparameters(device="cpu", processes_per_node=2, **{**TRAINING, **hyperparameters})
    return stub.StartRun(pb.StartRunRequest(base_model="tiny-phi3", datasets=[dataset], hyperparameters=hyper),
                         timeout=START_RUN_TIMEOUT_S).run


def test_the_torchrun_launcher_trains_and_cancels_a_run_of_two_processes(data_root, tiny_models, tmp_path):
    with running_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN",
                         env=_service_env(data_root, tiny_models, "torchrun"),
                         log_path=tmp_path / "trainer.log") as trainer:
        stub = pb_grpc.TrainerServiceStub(open_channel(trainer.address, token=TEST_GRPC_TOKEN))
        done = wait_for_run(stub, _start(stub, data_root).run_id, timeout_s=240)
        assert done.state == pb.RUN_STATE_SUCCEEDED, (done.error, trainer.log_text()[-2000:])
        assert done.step == done.max_steps == 10 and done.adapter_path  # 40 rows / (2 processes x 2 accumulation)
        plan = json.loads(done.config_json)["hyperparameters"]["distributed"]
        assert (plan["world_size"], plan["effective_batch_size"]) == (2, 4)  # 1 row x 2 accumulation x 2
        log = (data_root / "runs" / done.run_id / "events.jsonl").read_text()
        assert "in 2 process(es), effective batch 4" in log  # what the run page shows

        long = _start(stub, data_root, epochs=50)
        wait_for_run(stub, long.run_id, lambda r: r.step >= 2, timeout_s=240)
        stub.CancelRun(pb.CancelRunRequest(run_id=long.run_id), timeout=10)
        cancelled = wait_for_run(stub, long.run_id, timeout_s=60)
        assert cancelled.state == pb.RUN_STATE_CANCELLED and not cancelled.adapter_path
        assert cancelled.step < cancelled.max_steps
        # Both ranks stopped at the same step by themselves: nobody hung until the kill after the grace.
        assert "did not stop after cancel" not in trainer.log_text()
    assert _adapters(data_root) == [done.adapter_path.rsplit("/", 1)[-1]]


def test_the_local_launcher_refuses_several_processes_before_queueing(data_root, tiny_models, tmp_path):
    with running_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN",
                         env=_service_env(data_root, tiny_models, "local"),
                         log_path=tmp_path / "trainer.log") as trainer:
        stub = pb_grpc.TrainerServiceStub(open_channel(trainer.address, token=TEST_GRPC_TOKEN))
        with pytest.raises(grpc.RpcError) as refused:
            _start(stub, data_root)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "SYNTHTUNE_TRAINER_LAUNCHER=torchrun" in refused.value.details()
        assert stub.ListRuns(pb.ListRunsRequest(), timeout=10).runs == []
