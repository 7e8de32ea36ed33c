"""The kubeflow launcher: the TrainJob it submits, and the trainer service following, failing and
cancelling runs against a fake Kubeflow (tests/support/fake_kubeflow.py: one local torchrun
agent per node, with Kubeflow's PET_* variables).

The service runs in this process (its gRPC API on a free port) so the fake can stand in for the
kubernetes client; the nodes are real processes training tiny-phi3.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import grpc
import pytest
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

from synthtune.errors import FailedPrecondition, Unavailable
from synthtune.grpc_client import open_channel
from synthtune.trainer.v1 import trainer_pb2 as pb
from synthtune.trainer.v1 import trainer_pb2_grpc as pb_grpc
from tests.support.fake_kubeflow import FakeKubeflow
from tests.support.procs import START_RUN_TIMEOUT_S, TEST_GRPC_TOKEN
from tests.trainer_svc.conftest import fixed_answer_rows, wait_for_run, write_dataset
from trainer_svc import kubeflow
from trainer_svc.config import load_settings
from trainer_svc.event_file import CHILD_EVENTS_FILE
from trainer_svc.manager import RunManager
from trainer_svc.server import build_server

RUNTIME = "synthtune-trainer-node"
RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": 1, "memory": "4Gi"}}
# 40 rows, 2 accumulation: 20 steps on one node, 10 on two.
FAST = dict(epochs=1, max_length=128, learning_rate=5e-3, batch_size=1, gradient_accumulation_steps=2,
            packing=False, eval_fraction=0.0, device="cpu")


def _settings(data_root: Path, models: Path, **overrides):
    return load_settings(**{
        "grpc_token": TEST_GRPC_TOKEN, "data_root": data_root, "models_root": models, "launcher": "kubeflow",
        "kubeflow_runtime": RUNTIME, "kubeflow_namespace": "ml", "kubeflow_poll_s": 0.3,
        "kubeflow_resources": RESOURCES, **overrides})


# --- the TrainJob, offline ---------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["0123456789abcdef0123456789abcdef", "9" * 32, "Run_With.Odd-Chars", "x" * 200])
def test_train_job_names_are_rfc_1035_labels_with_room_for_the_pod_host_names(run_id):
    names = {kubeflow.train_job_name(run_id) for _ in range(5)}
    assert len(names) == 5  # a resumed run's new job never collides with the old one
    for name in names:
        assert kubeflow.is_dns_label(name) and len(name) <= kubeflow.MAX_JOB_NAME
        assert kubeflow.is_dns_label(f"{name}-node-63-0")  # JobSet's host name for node 63


def test_the_name_rule_is_rfc_1035():
    assert kubeflow.is_dns_label("st-a1")
    for bad in ("1abc", "abc-", "Abc", "a_b", "a.b", "a" * 64, ""):
        assert not kubeflow.is_dns_label(bad), bad


def test_the_train_job_uses_only_stable_fields_strings_for_quantities_and_no_secrets(tmp_path):
    settings = _settings(tmp_path, tmp_path, kubeflow_gpus_per_node=8, kubeflow_image="registry.example/trainer:1")
    environ = {"SYNTHTUNE_GRPC_TOKEN": TEST_GRPC_TOKEN, "HF_TOKEN": "hf_secret", "DATABASE_URL": "postgres://u:p@h/d",
               "HF_HOME": "/data/.cache/huggingface", "HF_HUB_OFFLINE": "1"}
    job = kubeflow.train_job_manifest(settings, name="st-run-abc123", run_id="run", run_dir=Path("/data/runs/run"),
                                      num_nodes=2, processes_per_node=4, environ=environ)
    # Kubeflow Trainer 2.3's own models take it unchanged (an unknown field would be dropped).
    assert TrainerV1alpha1TrainJob.from_dict(job).to_dict() == job
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    spec = job["spec"]
    assert set(spec) == {"runtimeRef", "trainer"}
    assert spec["runtimeRef"] == {"name": RUNTIME, "apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime"}
    trainer = spec["trainer"]
    assert set(trainer) <= {"image", "command", "args", "env", "numNodes", "numProcPerNode", "resourcesPerNode"}
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 4)  # ints: valid in v2.0 (IntOrString) and v2.3
    assert trainer["command"] + trainer["args"] == [
        "python", "-m", "torch.distributed.run", "-m", "trainer_svc.child", "/data/runs/run", "--events-file"]
    resources = trainer["resourcesPerNode"]
    assert resources == {"requests": {"cpu": "1", "memory": "2Gi"},
                         "limits": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "4"}}  # one GPU per process
    assert all(isinstance(v, str) for amounts in resources.values() for v in amounts.values())
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert env == {"HF_HOME": "/data/.cache/huggingface", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    assert not {TEST_GRPC_TOKEN, "hf_secret", "postgres://u:p@h/d"} & set(json.dumps(job).split('"'))


def test_conditions_decide_the_end():
    assert kubeflow.job_status(None).state == "gone"
    assert kubeflow.job_status({"status": {}}).state == "running"
    running = {"status": {"conditions": [{"type": "Created", "status": "True"},
                                         {"type": "Complete", "status": "False"}]}}
    assert not kubeflow.job_status(running).ended
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "m"}]}}
    assert kubeflow.job_status(failed) == kubeflow.JobStatus("failed", "FailedJobs", "m")
    assert kubeflow.job_status({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}).state == "complete"


def test_api_errors_say_what_to_do(tmp_path):
    fake = FakeKubeflow(tmp_path)
    jobs = kubeflow.TrainJobs(_settings(tmp_path, tmp_path), custom_api=fake, core_api=fake)
    jobs.check_runtime()
    fake.refuse.add("get_runtime")
    with pytest.raises(FailedPrecondition, match="service account needs the chart's Role"):
        jobs.check_runtime()
    fake.refuse.clear()
    missing = kubeflow.TrainJobs(_settings(tmp_path, tmp_path, kubeflow_runtime="other"), custom_api=fake,
                                 core_api=fake)
    with pytest.raises(FailedPrecondition, match="TrainingRuntime other does not exist in namespace ml"):
        missing.check_runtime()
    assert jobs.get("nothing") is None
    jobs.delete("nothing")  # gone already: fine

    class Down:
        def get_namespaced_custom_object(self, *args, **kwargs):
            raise ConnectionRefusedError("[Errno 111] Connection refused")

    with pytest.raises(Unavailable, match="did not answer"):
        kubeflow.TrainJobs(_settings(tmp_path, tmp_path), custom_api=Down(), core_api=Down()).get("x")


# --- the service with the kubeflow launcher ----------------------------------------------------------


class InProcessTrainer:
    """The trainer service (manager + gRPC server) on its own loop in a thread, on a free port."""

    def __init__(self, settings, fake: FakeKubeflow):
        self.settings, self.fake = settings, fake
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        self.stub = pb_grpc.TrainerServiceStub(open_channel(self.address, token=TEST_GRPC_TOKEN))
        return self

    async def _start(self):
        jobs = kubeflow.TrainJobs(self.settings, custom_api=self.fake, core_api=self.fake)
        self.manager = RunManager(settings=self.settings, train_jobs=jobs)
        self.manager.recover()
        self.manager.start_scheduler()
        self.handle = build_server(self.settings, self.manager, "127.0.0.1:0")
        await self.handle.server.start()
        self.address = f"127.0.0.1:{self.handle.port}"

    async def _stop(self):
        await self.manager.shutdown()
        await self.handle.server.stop(0)

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def fake(tmp_path):
    fake = FakeKubeflow(tmp_path / "pods")
    yield fake
    fake.close()


def _start(stub, data_root: Path, **hyperparameters) -> pb.Run:
    dataset = write_dataset(data_root, "fixed", fixed_answer_rows(40))
    request = pb.StartRunRequest(base_model="tiny-phi3", datasets=[dataset],
                                 hyperparameters=pb.Hyperparameters(**{**FAST, **hyperparameters}))
    return stub.StartRun(request, timeout=START_RUN_TIMEOUT_S).run


def _events(data_root: Path, run_id: str) -> list[dict]:
    return [json.loads(line) for line in (data_root / "runs" / run_id / "events.jsonl").read_text().splitlines()]


def _eventually(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)


def _adapters(data_root: Path) -> list[str]:
    folder = data_root / "adapters"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


@pytest.mark.slow
def test_a_two_node_run_trains_through_a_train_job_and_is_followed_again_after_a_restart(
        data_root, tiny_models, fake):
    settings = _settings(data_root, tiny_models)
    with InProcessTrainer(settings, fake) as trainer:
        run = _start(trainer.stub, data_root, num_nodes=2, processes_per_node=1)
        # 39 s for the whole test alone; in a fresh-clone CI run (beside the vLLM tests) reaching step 2
        # took past 120 s: imports dominate (torch and transformers: ~20 s in the service's validation
        # and again in each node on this machine, several times that under the suite's load).
        wait_for_run(trainer.stub, run.run_id, lambda r: r.step >= 2, timeout_s=300)
    # The service stopped mid-run; its TrainJob trained on. A new service follows it to the end.
    (job,) = fake.created
    assert fake.deleted == []
    with InProcessTrainer(settings, fake) as trainer:
        done = wait_for_run(trainer.stub, run.run_id, timeout_s=300)
        _eventually(lambda: fake.deleted, timeout_s=30)  # once its pods are done too
    assert done.state == pb.RUN_STATE_SUCCEEDED, done.error
    assert done.step == done.max_steps == 10 and done.adapter_path
    assert _adapters(data_root) == [done.adapter_path.rsplit("/", 1)[-1]]  # node 0 alone exported, once
    assert len(fake.created) == 1 and fake.deleted == [job["metadata"]["name"]]  # not resumed: the same job
    assert job["spec"]["trainer"]["numNodes"] == 2 and job["spec"]["trainer"]["numProcPerNode"] == 1
    events = _events(data_root, run.run_id)
    steps = [e["data"]["step"] for e in events if e["kind"] == "step"]
    assert steps == list(range(1, 11))  # through the shared-volume file, each once across the restart
    assert [e["kind"] for e in events].count("exported") == 1
    messages = [e["data"].get("message", "") for e in events if e["kind"] == "log"]
    assert any("in 2 process(es)" in m for m in messages)
    assert any(f"following TrainJob {job['metadata']['name']} again" in m for m in messages)
    assert (data_root / "runs" / run.run_id / CHILD_EVENTS_FILE).is_file()


@pytest.mark.slow
def test_a_failed_train_job_fails_the_run_with_node_0s_last_log_lines(data_root, tiny_models, tmp_path):
    fake = FakeKubeflow(tmp_path / "pods", hold=True)
    try:
        with InProcessTrainer(_settings(data_root, tiny_models), fake) as trainer:
            run = _start(trainer.stub, data_root)
            wait_for_run(trainer.stub, run.run_id, lambda r: r.state == pb.RUN_STATE_RUNNING, timeout_s=120)
            (data_root / "datasets" / "fixed.jsonl").unlink()  # gone by the time the node starts
            fake.start_held()
            # 107 s of a 120 s wait in a fresh-clone `make test` (session 9); what is slow there is not
            # known yet (the cancel test below shows it too). What is tested is the failure, not the speed.
            failed = wait_for_run(trainer.stub, run.run_id, timeout_s=300)
    finally:
        fake.close()
    assert failed.state == pb.RUN_STATE_FAILED
    first, _, tail = failed.error.partition("\nnode 0's last log lines:\n")
    assert "fixed.jsonl" in first  # the node's own error...
    assert "training failed on this rank" in tail and "fixed.jsonl" in tail  # ...and its pod's log
    assert _adapters(data_root) == [] and fake.deleted == []  # a failed job stays, for kubectl


@pytest.mark.slow
def test_cancel_deletes_the_train_job_and_nothing_is_exported(data_root, tiny_models, fake):
    with InProcessTrainer(_settings(data_root, tiny_models), fake) as trainer:
        run = _start(trainer.stub, data_root, epochs=50)
        # 25 s alone; in a fresh-clone `make test`, near the end of the run, it once took past 120 s
        # to reach step 2 (why is not known yet). What is tested is the cancel, not the speed.
        wait_for_run(trainer.stub, run.run_id, lambda r: r.step >= 2, timeout_s=300)
        trainer.stub.CancelRun(pb.CancelRunRequest(run_id=run.run_id), timeout=30)
        cancelled = wait_for_run(trainer.stub, run.run_id, timeout_s=60)
    assert cancelled.state == pb.RUN_STATE_CANCELLED and cancelled.step < cancelled.max_steps
    assert fake.deleted == [fake.created[0]["metadata"]["name"]]
    assert _adapters(data_root) == [] and not cancelled.adapter_path


def test_a_refused_train_job_fails_the_run_and_a_missing_runtime_refuses_it(data_root, tiny_models, fake):
    with InProcessTrainer(_settings(data_root, tiny_models), fake) as trainer:
        fake.refuse.add("create")
        run = _start(trainer.stub, data_root)
        failed = wait_for_run(trainer.stub, run.run_id, timeout_s=30)
        assert failed.state == pb.RUN_STATE_FAILED
        assert "could not be created" in failed.error and "cannot create resource" in failed.error
        assert "service account needs the chart's Role" in failed.error
        fake.runtimes.clear()
        with pytest.raises(grpc.RpcError) as refused:
            _start(trainer.stub, data_root)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"TrainingRuntime {RUNTIME} does not exist" in refused.value.details()
    assert fake.created == []
