"""The kubeflow launcher: a run's training as a Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1).

- Submit. The TrainJob names the chart's TrainingRuntime (`runtimeRef`) and carries only
  the fields stable from Trainer v2.0 to v2.3 in `trainer`: image, command, args, env,
  numNodes, numProcPerNode (an int: v2.0 took int-or-string, v2.3 an int) and
  resourcesPerNode (quantities as strings). Mounts live in the runtime: the data volume at
  the trainer's own mount path, so the run folder's absolute paths hold on every node.
- Run. Each node's pod runs torchrun, which reads the PET_* variables Kubeflow's torch
  policy sets (PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR,
  PET_MASTER_PORT); world rank 0 appends events to the run folder (trainer_svc.event_file).
- Follow. `follow` reads those events and the TrainJob's status.conditions (Complete or
  Failed, True) until the job ends or is deleted; `node0_log_tail` reads the last lines of
  node 0's pod for a failed job's error. Cancel deletes the job.

The kubernetes client is imported only here, when the launcher is kubeflow. Every API call
has a timeout; API errors become domain errors a person can act on (Unavailable when the API
does not answer, FailedPrecondition when it refuses).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthtune.errors import FailedPrecondition, SynthtuneError, Unavailable
from trainer_svc.config import TrainerSettings
from trainer_svc.event_file import read_events

logger = logging.getLogger(__name__)

GROUP, VERSION = "trainer.kubeflow.org", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
TRAINJOBS, RUNTIMES = "trainjobs", "trainingruntimes"
NODE = "node"  # the runtime's replicated job and container Kubeflow's torch policy fills in
RUN_ID_LABEL = "synthtune.io/run-id"
# JobSet's labels on every pod it makes: the TrainJob's name, the replicated job, the node's index.
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
JOB_INDEX_LABEL = "jobset.sigs.k8s.io/job-index"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

_RFC_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Pods get the host name <job>-node-<i>-0 (a DNS label, 63 at most): room for 64 nodes and more.
MAX_JOB_NAME = 45
# Variables a node's training may need from the trainer's own environment; nothing secret
# (the gRPC token, database URLs, HF_TOKEN) is ever passed on.
PASSED_ON = ("HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
# torchrun's own failure report is about 35 lines: the last lines must reach past it to the error.
LOG_TAIL_LINES = 60


def is_dns_label(name: str) -> bool:
    """An RFC 1035 label: what a TrainJob's name must be (Trainer v2.3 checks it too)."""
    return len(name) <= 63 and bool(_RFC_1035.match(name))


def train_job_name(run_id: str) -> str:
    """A fresh TrainJob name for one attempt of `run_id`: "st-<run id>-<6 hex>", cut to fit.

    A resumed run gets a new job, so it never waits for the old one's deletion.
    """
    stem = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")[:MAX_JOB_NAME - 10].strip("-")
    name = f"st-{stem}-{secrets.token_hex(3)}" if stem else f"st-{secrets.token_hex(3)}"
    if not is_dns_label(name):  # cannot happen for the manager's hex run ids; a guard for others
        raise ValueError(f"cannot make a TrainJob name from run id {run_id!r}")
    return name


def train_job_manifest(settings: TrainerSettings, *, name: str, run_id: str, run_dir: Path, num_nodes: int,
                       processes_per_node: int, environ: dict[str, str]) -> dict[str, Any]:
    """The TrainJob for one attempt of a run; `environ` is the trainer's environment (filtered here)."""
    env = {key: environ[key] for key in PASSED_ON if environ.get(key)}
    env |= settings.hub_environment
    threads = _threads_per_process(settings.kubeflow_resources, processes_per_node)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    trainer: dict[str, Any] = {
        "command": ["python", "-m", "torch.distributed.run"],
        "args": ["-m", "trainer_svc.child", str(run_dir), "--events-file"],
        "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
        "numNodes": num_nodes,
        "numProcPerNode": processes_per_node,
    }
    if settings.kubeflow_image:
        trainer["image"] = settings.kubeflow_image
    resources = _resources_per_node(settings, processes_per_node)
    if resources:
        trainer["resourcesPerNode"] = resources
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": {"name": name, "labels": {RUN_ID_LABEL: run_id, "app.kubernetes.io/managed-by": "synthtune"}},
        "spec": {"runtimeRef": {"name": settings.kubeflow_runtime, "apiGroup": GROUP, "kind": "TrainingRuntime"},
                 "trainer": trainer},
    }


def _resources_per_node(settings: TrainerSettings, processes_per_node: int) -> dict[str, dict[str, str]]:
    """CPU and memory from the settings, plus one GPU per process on GPU nodes; all strings."""
    resources = {kind: dict(amounts) for kind, amounts in settings.kubeflow_resources.items() if amounts}
    if settings.kubeflow_gpus_per_node:
        resources.setdefault("limits", {})[settings.kubeflow_gpu_resource] = str(processes_per_node)
    return resources


def _threads_per_process(resources: dict[str, dict[str, str]], processes: int) -> int:
    """Whole cores of the CPU limit shared out per process (0: no whole-core limit to go by)."""
    cpu = resources.get("limits", {}).get("cpu", "")
    return max(1, int(cpu) // processes) if cpu.isdigit() else 0


@dataclass(frozen=True)
class JobStatus:
    """Where a TrainJob stands: running, complete, failed, or gone (deleted, or never made)."""

    state: str
    reason: str = ""
    message: str = ""

    @property
    def ended(self) -> bool:
        return self.state != "running"


def job_status(job: dict[str, Any] | None) -> JobStatus:
    """Read status.conditions: Failed or Complete with status "True" ends it; anything else runs."""
    if job is None:
        return JobStatus("gone")
    conditions = (job.get("status") or {}).get("conditions") or []
    for kind in ("Failed", "Complete"):  # Failed first: a job is never both, but failure must win
        for condition in conditions:
            if condition.get("type") == kind and condition.get("status") == "True":
                return JobStatus(kind.lower(), condition.get("reason", ""), condition.get("message", ""))
    return JobStatus("running")


class TrainJobs:
    """TrainJobs in one namespace, through the kubernetes client (or objects shaped like its
    CustomObjectsApi and CoreV1Api, for tests)."""

    def __init__(self, settings: TrainerSettings, *, custom_api: Any = None, core_api: Any = None):
        self.settings = settings
        self.namespace = settings.kubeflow_namespace or _own_namespace()
        self._custom, self._core = custom_api, core_api
        self._timeout = settings.kubeflow_api_timeout_s

    def check_runtime(self) -> None:
        """Raise unless the TrainingRuntime exists and can be read (before a run is queued)."""
        name = self.settings.kubeflow_runtime
        try:
            self._custom_api().get_namespaced_custom_object(GROUP, VERSION, self.namespace, RUNTIMES, name,
                                                            _request_timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - translated to a domain error
            raise self._error(exc, f"reading TrainingRuntime {name}", missing=(
                f"TrainingRuntime {name} does not exist in namespace {self.namespace}: install the chart with "
                "trainer.launcher=kubeflow (it ships it), or set SYNTHTUNE_TRAINER_KUBEFLOW_RUNTIME")) from None

    def create(self, manifest: dict[str, Any]) -> None:
        try:
            self._custom_api().create_namespaced_custom_object(GROUP, VERSION, self.namespace, TRAINJOBS, manifest,
                                                               _request_timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, f"creating TrainJob {manifest['metadata']['name']}", missing=(
                f"the TrainJob API ({API_VERSION}) is not served: install Kubeflow Trainer v2 "
                "(with JobSet) in the cluster")) from None

    def get(self, name: str) -> dict[str, Any] | None:
        """The TrainJob, or None when it does not exist."""
        try:
            return self._custom_api().get_namespaced_custom_object(GROUP, VERSION, self.namespace, TRAINJOBS, name,
                                                                   _request_timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001
            if _status(exc) == 404:
                return None
            raise self._error(exc, f"reading TrainJob {name}") from None

    def delete(self, name: str) -> None:
        """Delete the TrainJob and, in the background, its JobSet and pods; gone already is fine."""
        try:
            self._custom_api().delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, TRAINJOBS, name, propagation_policy="Background",
                _request_timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001
            if _status(exc) != 404:
                raise self._error(exc, f"deleting TrainJob {name}") from None

    def node0_log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        """The last `lines` lines of node 0's newest pod, or a sentence saying why there are none."""
        selector = f"{JOBSET_NAME_LABEL}={name},{REPLICATED_JOB_LABEL}={NODE},{JOB_INDEX_LABEL}=0"
        try:
            core = self._core_api()
            pods = core.list_namespaced_pod(self.namespace, label_selector=selector,
                                            _request_timeout=self._timeout).items
            if not pods:
                return "(node 0 has no pod left to read a log from)"
            pod = max(pods, key=lambda p: p.metadata.creation_timestamp or 0)
            text = core.read_namespaced_pod_log(pod.metadata.name, self.namespace, container=NODE,
                                                tail_lines=lines, _request_timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - the failure is reported either way
            return f"(node 0's log could not be read: {self._error(exc, 'reading the log').message})"
        return (text or "").rstrip()[-6000:] or "(node 0's log is empty)"

    # -- the client, and its errors ----------------------------------------------------------

    def _custom_api(self) -> Any:
        if self._custom is None:
            self._load()
        return self._custom

    def _core_api(self) -> Any:
        if self._core is None:
            self._load()
        return self._core

    def _load(self) -> None:
        from kubernetes import client, config  # only with the kubeflow launcher

        try:
            config.load_incluster_config()
        except config.ConfigException:
            try:
                config.load_kube_config()
            except (config.ConfigException, OSError) as exc:
                raise Unavailable(f"no Kubernetes API to talk to: not in a pod, and no kubeconfig ({exc}).") from None
        api = client.ApiClient()
        self._custom = self._custom or client.CustomObjectsApi(api)
        self._core = self._core or client.CoreV1Api(api)

    def _error(self, exc: Exception, doing: str, *, missing: str = "") -> SynthtuneError:
        if isinstance(exc, SynthtuneError):
            return exc
        status = _status(exc)
        detail = _api_message(exc)
        if status in (401, 403):
            return FailedPrecondition(
                f"{doing}: the Kubernetes API refused it ({status}: {detail}). The trainer's service account "
                f"needs the chart's Role in namespace {self.namespace}: trainjobs create/get/list/watch/delete, "
                "trainingruntimes get, pods and pods/log get/list.")
        if status == 404 and missing:
            return FailedPrecondition(f"{doing}: {missing}.")
        if status is not None and 400 <= status < 500:
            return FailedPrecondition(f"{doing}: the Kubernetes API refused it ({status}: {detail}).")
        return Unavailable(f"{doing}: the Kubernetes API did not answer ({detail}); try again shortly.")


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)  # kubernetes.client.exceptions.ApiException
    return status if isinstance(status, int) and status > 0 else None


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)[:500]
        except (ValueError, AttributeError):
            return str(body)[:500]
    return str(getattr(exc, "reason", "") or exc or type(exc).__name__)[:500]


def _own_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


OnEvents = Callable[[list[dict[str, Any]], int], None]


async def follow(jobs: TrainJobs, name: str, events_path: Path, *, offset: int, on_events: OnEvents,
                 poll_s: float, patience_s: float) -> JobStatus:
    """Hand node 0's events to `on_events(events, new_offset)` until the TrainJob ends; its end.

    The events written before the job ended are all read before this returns. While the API
    does not answer the run goes on being followed, for `patience_s`; then Unavailable.
    """
    failing_since: float | None = None
    while True:
        offset = _take_events(events_path, offset, on_events)
        try:
            status = job_status(await asyncio.to_thread(jobs.get, name))
            failing_since = None
        except Unavailable as exc:
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > patience_s:
                raise Unavailable(f"lost the Kubernetes API for over {patience_s:.0f} s while following TrainJob "
                                  f"{name}: {exc.message}") from None
            logger.warning("cannot read the TrainJob; still following", extra={"job": name, "error": exc.message})
            status = JobStatus("running")
        if status.ended:
            _take_events(events_path, offset, on_events)
            return status
        await asyncio.sleep(poll_s)


def _take_events(path: Path, offset: int, on_events: OnEvents) -> int:
    events, new_offset = read_events(path, offset)
    if new_offset != offset:
        on_events(events, new_offset)
    return new_offset
