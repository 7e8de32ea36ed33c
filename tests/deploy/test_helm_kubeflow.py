"""The chart with trainer.launcher=kubeflow: the TrainingRuntime it ships, the TrainJob the trainer
makes from its settings, RBAC and the training pods' NetworkPolicy.

The TrainingRuntime and TrainJob are custom resources: they are round-tripped through Kubeflow
Trainer's own API models (PyPI kubeflow-trainer-api 2.3.0), and the pod Kubeflow makes from the
two is validated with kubernetes-validate --strict.
"""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
from kubeflow_trainer_api.models import TrainerV1alpha1TrainingRuntime, TrainerV1alpha1TrainJob

from tests.deploy import k8s
from tests.deploy.conftest import K8S_VERSIONS, NAMESPACE, TEST_SECRETS, manifests_of
from trainer_svc import kubeflow
from trainer_svc.config import load_settings

RUN_ID = "0123456789abcdef0123456789abcdef"


def _runtime(manifests) -> dict:
    (runtime,) = k8s.of_kind(manifests, "TrainingRuntime")
    return {k: v for k, v in runtime.items() if k != "__template__"}


def _node_job(runtime: dict) -> dict:
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    return job


def _trainer_settings(manifests, monkeypatch):
    """The trainer's settings as its pod reads them from the rendered env."""
    container = k8s.pod(manifests, "trainer").container("trainer")
    for name, entry in k8s.env(container).items():
        if "value" in entry:
            monkeypatch.setenv(name, entry["value"])
    monkeypatch.setenv("SYNTHTUNE_GRPC_TOKEN", TEST_SECRETS["grpcToken"])
    return load_settings()


def _train_job(manifests, monkeypatch, *, nodes: int = 2, processes: int = 1) -> dict:
    settings = _trainer_settings(manifests, monkeypatch)
    run_dir = Path(settings.data_root) / "runs" / RUN_ID
    return kubeflow.train_job_manifest(settings, name=kubeflow.train_job_name(RUN_ID), run_id=RUN_ID,
                                       run_dir=run_dir, num_nodes=nodes, processes_per_node=processes,
                                       environ={"SYNTHTUNE_GRPC_TOKEN": TEST_SECRETS["grpcToken"]})


def _pod_kubeflow_makes(runtime: dict, job: dict) -> dict:
    """Node 0's pod as Trainer v2.0 builds it: the runtime's template with the TrainJob's trainer
    fields (resourcesPerNode replaces the resources) and the torch policy's PET_* variables."""
    template = copy.deepcopy(_node_job(runtime)["template"]["spec"]["template"])
    trainer = job["spec"]["trainer"]
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == kubeflow.NODE]
    container["image"] = trainer.get("image", container["image"])
    container["command"], container["args"] = trainer["command"], trainer["args"]
    container["env"] = container.get("env", []) + trainer["env"] + [
        {"name": "PET_NNODES", "value": str(trainer["numNodes"])},
        {"name": "PET_NPROC_PER_NODE", "value": str(trainer["numProcPerNode"])},
        {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
        {"name": "PET_MASTER_ADDR", "value": f"{job['metadata']['name']}-node-0-0.{job['metadata']['name']}"},
        {"name": "PET_MASTER_PORT", "value": "29500"},
    ]
    container["resources"] = trainer["resourcesPerNode"]
    name = job["metadata"]["name"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-node-0-0-x7k2p", "namespace": NAMESPACE, "labels": {
                **template["metadata"]["labels"], kubeflow.JOBSET_NAME_LABEL: name}},
            "spec": {**template["spec"], "hostname": f"{name}-node-0-0", "subdomain": name}}


def test_the_training_runtime_round_trips_through_kubeflows_models():
    runtime = _runtime(manifests_of("kubeflow"))
    assert TrainerV1alpha1TrainingRuntime.from_dict(runtime).to_dict() == runtime  # nothing unknown dropped
    assert runtime["spec"]["mlPolicy"]["torch"] == {}  # the torch policy: PET_* for torchrun
    job = _node_job(runtime)
    assert job["name"] == kubeflow.NODE
    assert job["template"]["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    assert job["template"]["spec"]["backoffLimit"] == 0
    assert [c["name"] for c in job["template"]["spec"]["template"]["spec"]["containers"]] == [kubeflow.NODE]


def test_the_train_job_from_the_charts_settings_round_trips_and_points_at_the_runtime(monkeypatch):
    manifests = manifests_of("kubeflow")
    job = _train_job(manifests, monkeypatch)
    assert TrainerV1alpha1TrainJob.from_dict(job).to_dict() == job
    assert job["spec"]["runtimeRef"]["name"] == _runtime(manifests)["metadata"]["name"]
    name = job["metadata"]["name"]
    assert kubeflow.is_dns_label(name) and kubeflow.is_dns_label(f"{name}-node-63-0")
    assert kubeflow.is_dns_label(_runtime(manifests)["metadata"]["name"])
    assert TEST_SECRETS["grpcToken"] not in str(job)  # the trainer's token never reaches a node
    # What the job asks for per node is what the runtime says, GPUs as strings.
    container = _node_job(_runtime(manifests))["template"]["spec"]["template"]["spec"]["containers"][0]
    assert job["spec"]["trainer"]["resourcesPerNode"] == container["resources"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert job["spec"]["trainer"]["image"] == container["image"] and "trainer-cuda" in container["image"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_pod_kubeflow_makes_and_the_runtimes_job_validate_strictly(monkeypatch, version):
    manifests = manifests_of("kubeflow")
    runtime = _runtime(manifests)
    pod = _pod_kubeflow_makes(runtime, _train_job(manifests, monkeypatch))
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "st-x-node-0", "namespace": NAMESPACE},
           "spec": _node_job(runtime)["template"]["spec"]}
    for doc in (pod, job):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {'.'.join(str(p) for p in exc.path)}: {exc.message}")


def test_nodes_mount_the_data_claim_where_the_trainer_does_with_shm_and_the_trainers_image():
    manifests = manifests_of("kubeflow")
    trainer = k8s.pod(manifests, "trainer")
    node = k8s.pod(manifests, "trainer-node")
    data_root = k8s.env_value(trainer.container("trainer"), "SYNTHTUNE_DATA_ROOT")
    container = node.container(kubeflow.NODE)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == data_root)
    assert not mount.get("readOnly") and "subPath" not in mount  # the run folder's absolute paths hold
    assert node.volume(mount["name"])["persistentVolumeClaim"] == trainer.volume("data")["persistentVolumeClaim"]
    shm = next(m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm")
    assert node.volume(shm["name"])["emptyDir"]["medium"] == "Memory"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in node.spec["tolerations"]
    assert node.spec["restartPolicy"] == "Never"
    assert k8s.env_value(container, "HF_HOME") == k8s.env_value(trainer.container("trainer"), "HF_HOME")


def test_the_trainer_holds_no_gpu_and_has_its_own_account_with_only_what_it_needs():
    manifests = manifests_of("kubeflow")
    trainer = k8s.pod(manifests, "trainer")
    assert not any("gpu" in key for key in trainer.container("trainer")["resources"].get("limits", {}))
    account = trainer.spec["serviceAccountName"]
    assert account != k8s.pod(manifests, "trainer-node").spec["serviceAccountName"]
    assert k8s.named(manifests, "ServiceAccount", account)
    (binding,) = k8s.of_kind(manifests, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
    (role,) = k8s.of_kind(manifests, "Role")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    expected = {("trainer.kubeflow.org", "trainjobs", v) for v in ("create", "get", "list", "watch", "delete")}
    expected |= {("trainer.kubeflow.org", "trainingruntimes", "get")}
    expected |= {("", r, v) for r in ("pods", "pods/log") for v in ("get", "list")}
    assert granted == expected
    # Without the kubeflow launcher there is none of it.
    default = manifests_of("default")
    assert not k8s.of_kind(default, "Role") and not k8s.of_kind(default, "TrainingRuntime")


def test_training_pods_reach_only_each_other_and_dns():
    manifests = manifests_of("kubeflow")
    node = k8s.pod(manifests, "trainer-node")
    (policy,) = [p for p in k8s.of_kind(manifests, "NetworkPolicy")
                 if k8s.selects(p["spec"]["podSelector"], node.labels)]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for rule in policy["spec"]["ingress"]:  # rendezvous and NCCL use any port: peers only, no port list
        assert [k8s.selects(peer["podSelector"], node.labels) for peer in rule["from"]] == [True]
    egress = policy["spec"]["egress"]
    peers = [rule for rule in egress if "to" in rule]
    assert [k8s.selects(peer["podSelector"], node.labels) for rule in peers for peer in rule["to"]] == [True]
    (dns,) = [rule for rule in egress if "to" not in rule]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
