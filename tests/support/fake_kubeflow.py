"""A fake Kubeflow Trainer v2 for tests: CustomObjectsApi and CoreV1Api calls the kubeflow launcher
makes, with each TrainJob run here as one local process per node.

What it does as Kubeflow does: every TrainJob is checked against the `kubeflow-trainer-api`
models; each node runs the job's command with the PET_* variables the torch policy sets
(PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT) and the
job's env; status.conditions gets Complete when every node exits 0 and Failed (the other
nodes stopped) when one does not; delete stops the nodes (SIGTERM, then SIGKILL, as the
kubelet) and the job is gone. Pods carry JobSet's labels; their log is the node's output.
The "image" is this venv: the command's `python` is this interpreter. Missing objects raise
the client's own ApiException(404); `refuse` makes a verb answer 403.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kubernetes.client import V1ObjectMeta, V1Pod, V1PodList
from kubernetes.client.exceptions import ApiException

from synthtune.readiness import free_port
from tests.support.procs import REPO

KILL_GRACE_S = 5.0


@dataclass
class _Node:
    proc: subprocess.Popen
    log: Path
    pod: str
    created: datetime


@dataclass
class _Job:
    body: dict
    nodes: list[_Node] = field(default_factory=list)


class FakeKubeflow:
    """Both APIs in one object: pass it as custom_api and core_api."""

    def __init__(self, log_dir: Path, *, runtimes: tuple[str, ...] = ("synthtune-trainer-node",), hold: bool = False):
        self.log_dir = log_dir
        self.runtimes = set(runtimes)
        self.hold = hold  # keep created jobs' nodes unstarted until start_held()
        self.refuse: set[str] = set()  # verbs answered 403: "create", "get_runtime"
        self.created: list[dict] = []  # every TrainJob body, in order
        self.deleted: list[str] = []
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    # -- CustomObjectsApi -----------------------------------------------------------------------

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **_):
        if "create" in self.refuse:
            raise _api_error(403, "Forbidden", f'trainjobs.trainer.kubeflow.org is forbidden: User "system:'
                                               f'serviceaccount:{namespace}:st" cannot create resource "trainjobs"')
        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        _check_against_the_api_models(body)
        name = body["metadata"]["name"]
        with self._lock:
            if name in self._jobs:
                raise _api_error(409, "Conflict", f'trainjobs "{name}" already exists')
            job = _Job(copy.deepcopy(body) | {"status": {"conditions": []}})
            self._jobs[name] = job
            self.created.append(copy.deepcopy(body))
        if not self.hold:
            self._start(name, job)
        return copy.deepcopy(job.body)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **_):
        if plural == "trainingruntimes":
            if "get_runtime" in self.refuse:
                raise _api_error(403, "Forbidden", "trainingruntimes.trainer.kubeflow.org is forbidden")
            if name not in self.runtimes:
                raise _api_error(404, "Not Found", f'trainingruntimes.trainer.kubeflow.org "{name}" not found')
            return {"metadata": {"name": name}}
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                raise _api_error(404, "Not Found", f'trainjobs.trainer.kubeflow.org "{name}" not found')
            return copy.deepcopy(job.body)

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, **_):
        with self._lock:
            job = self._jobs.pop(name, None)
        if job is None:
            raise _api_error(404, "Not Found", f'trainjobs.trainer.kubeflow.org "{name}" not found')
        self.deleted.append(name)
        _stop(job.nodes)
        return {"status": "Success"}

    # -- CoreV1Api ----------------------------------------------------------------------------------

    def list_namespaced_pod(self, namespace, label_selector="", **_):
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if part)
        pods = []
        with self._lock:
            for name, job in self._jobs.items():
                for index, node in enumerate(job.nodes):
                    labels = {"jobset.sigs.k8s.io/jobset-name": name, "jobset.sigs.k8s.io/replicatedjob-name": "node",
                              "jobset.sigs.k8s.io/job-index": str(index)}
                    if all(labels.get(k) == v for k, v in wanted.items()):
                        pods.append(V1Pod(metadata=V1ObjectMeta(name=node.pod, labels=labels,
                                                                creation_timestamp=node.created)))
        return V1PodList(items=pods)

    def read_namespaced_pod_log(self, name, namespace, container=None, tail_lines=None, **_):
        assert container == "node"
        with self._lock:
            node = next((n for job in self._jobs.values() for n in job.nodes if n.pod == name), None)
        if node is None:
            raise _api_error(404, "Not Found", f'pods "{name}" not found')
        lines = node.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-tail_lines:] if tail_lines else lines) + "\n"

    # -- for tests ----------------------------------------------------------------------------------

    def start_held(self) -> None:
        with self._lock:
            waiting = [(name, job) for name, job in self._jobs.items() if not job.nodes]
        for name, job in waiting:
            self._start(name, job)

    def close(self) -> None:
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            _stop(job.nodes)

    def _start(self, name: str, job: _Job) -> None:
        trainer = job.body["spec"]["trainer"]
        command = list(trainer["command"]) + list(trainer.get("args", []))
        if command[0] == "python":
            command[0] = sys.executable
        nodes, per_node, port = trainer.get("numNodes", 1), trainer.get("numProcPerNode", 1), str(free_port())
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               **{e["name"]: e["value"] for e in trainer.get("env", [])}}
        for rank in range(nodes):
            pod = f"{name}-node-0-{rank}-abcde"
            log = self.log_dir / f"{pod}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("wb") as out:
                proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**env, "PET_NNODES": str(nodes), "PET_NPROC_PER_NODE": str(per_node),
                                             "PET_NODE_RANK": str(rank), "PET_MASTER_ADDR": "127.0.0.1",
                                             "PET_MASTER_PORT": port})
            job.nodes.append(_Node(proc, log, pod, datetime.now(UTC)))
        threading.Thread(target=self._watch, args=(name, job), daemon=True).start()

    def _watch(self, name: str, job: _Job) -> None:
        """JobSet's rule: the first node to fail fails the job (the others are stopped); all 0: complete."""
        pending = list(job.nodes)
        failed = None
        while pending and failed is None:
            for node in list(pending):
                try:
                    code = node.proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
                pending.remove(node)
                if code != 0:
                    failed = (node, code)
        if failed:
            _stop(pending)
        condition = ({"type": "Failed", "status": "True", "reason": "FailedJobs",
                      "message": f"jobset failed: pod {failed[0].pod} exited with code {failed[1]}"}
                     if failed else {"type": "Complete", "status": "True", "reason": "JobsCompleted",
                                     "message": "jobset completed"})
        with self._lock:
            if self._jobs.get(name) is job:  # not deleted meanwhile
                job.body["status"]["conditions"].append(condition)


def _stop(nodes: list[_Node]) -> None:
    for node in nodes:
        if node.proc.poll() is None:
            os.killpg(node.proc.pid, signal.SIGTERM)
    for node in nodes:
        try:
            node.proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait()


def _check_against_the_api_models(body: dict) -> None:
    """What Kubeflow's API server would refuse: the model round trip drops unknown fields."""
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    assert TrainerV1alpha1TrainJob.from_dict(body).to_dict() == body, json.dumps(body, indent=1)


def _api_error(status: int, reason: str, message: str) -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "reason": reason,
                             "code": status})
    return error
