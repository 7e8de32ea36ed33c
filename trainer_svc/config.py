"""Trainer settings: the only module that reads the environment.

Every variable, with its default:
- SYNTHTUNE_TRAINER_LISTEN          127.0.0.1:50052  host:port the gRPC server binds
- SYNTHTUNE_MODELS_ROOT             ./var/models     folder of local base models, by name
- SYNTHTUNE_TRAINER_CANCEL_GRACE_S  60               after a cancel, how long a run may take to stop
                                                      before its process is killed
- SYNTHTUNE_TRAINER_LAUNCHER        local            how a run's training processes start: "local" (one
                                                      process), "torchrun" (python -m torch.distributed.run,
                                                      processes_per_node processes on this machine),
                                                      "kubeflow" (a Kubeflow Trainer v2 TrainJob: num_nodes
                                                      pods of processes_per_node processes; trainer_svc.kubeflow)
- SYNTHTUNE_TRAINER_CHECKPOINT_STEPS 50            a checkpoint every N optimizer steps (0: only per epoch;
                                                      one is always saved at every epoch's end)
- SYNTHTUNE_TRAINER_CHECKPOINT_KEEP  2             how many of a run's newest checkpoints are kept
- SYNTHTUNE_TRAINER_MAX_AUTO_RESUMES 3             how often a run whose process died (or whose service
                                                      stopped) is resumed from its checkpoint by itself
- SYNTHTUNE_TRAINER_FAILED_CHECKPOINTS_HOURS 72    how long a failed run keeps its checkpoints, so that it
                                                      can be resumed by hand; then they are deleted (0: at once)
- SYNTHTUNE_HF_HUB_CACHE            (unset)          Hugging Face hub cache for base models not under the
                                                      models root; alias TRANSFORMERS_CACHE (the old app's,
                                                      which transformers 5 no longer reads). Unset:
                                                      huggingface_hub's own default, which honours HF_HOME
- SYNTHTUNE_MLFLOW_TRACKING_URI     (unset)          where runs with report_to=mlflow log: an MLflow server
                                                      (http://host:5000) or store; alias MLFLOW_TRACKING_URI.
                                                      Unset: the file store <data_root>/mlruns, no server.
                                                      Credentials go in MLflow's own variables
                                                      (MLFLOW_TRACKING_TOKEN, ..._USERNAME/_PASSWORD), which
                                                      the training process inherits; never in the URI
- SYNTHTUNE_MLFLOW_EXPERIMENT       synthtune        the MLflow experiment runs log to
- SYNTHTUNE_TRAINER_JUDGE_URL       (unset)          an OpenAI-compatible endpoint (".../v1") that grades the
                                                      generation evals' answers 1-5 (eval_judge_score); with
- SYNTHTUNE_TRAINER_JUDGE_MODEL     (unset)          the model it serves to grade with (both or neither)
- SYNTHTUNE_TRAINER_JUDGE_TOKEN     (unset)          its bearer token: sent, never stored or logged
- SYNTHTUNE_TRAINER_JUDGE_TIMEOUT_S 30               each grading request's timeout
- SYNTHTUNE_OUTBOUND_DENY / _ALLOW  (unset)          the outbound policy the judge URL must pass at start
                                                      (synthtune.outbound: link-local and metadata always denied)
With SYNTHTUNE_TRAINER_LAUNCHER=kubeflow only:
- SYNTHTUNE_TRAINER_KUBEFLOW_RUNTIME   (required)    the TrainingRuntime the TrainJobs point at (the chart
                                                      ships one: the data volume at the same mount path)
- SYNTHTUNE_TRAINER_KUBEFLOW_NAMESPACE (pod's own)    where TrainJobs go; empty: the service account's
                                                      namespace file, else "default"
- SYNTHTUNE_TRAINER_KUBEFLOW_IMAGE     (runtime's)    the training image; empty: the runtime's own
- SYNTHTUNE_TRAINER_KUBEFLOW_GPUS_PER_NODE 0         GPUs each node requests (0: CPU nodes); a run's
                                                      processes_per_node defaults to it and may not pass it
- SYNTHTUNE_TRAINER_KUBEFLOW_GPU_RESOURCE nvidia.com/gpu the GPUs' resource name
- SYNTHTUNE_TRAINER_KUBEFLOW_RESOURCES {}             JSON {"requests": {...}, "limits": {...}}: each node's
                                                      CPU and memory (the GPUs are added). It replaces the
                                                      runtime's resources, so give both (Trainer v2.0)
- SYNTHTUNE_TRAINER_KUBEFLOW_POLL_S    2              how often a TrainJob's conditions and events are read
- SYNTHTUNE_TRAINER_KUBEFLOW_API_TIMEOUT_S 30         each Kubernetes API call's timeout
- SYNTHTUNE_TRAINER_KUBEFLOW_API_PATIENCE_S 300       how long a followed run outlasts an unreachable API
                                                      before it fails
plus the shared SYNTHTUNE_* settings of synthtune.settings.CommonSettings.
One run trains at a time (one per device); the others wait in the queue.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from synthtune.errors import InvalidArgument
from synthtune.outbound import OutboundSettings
from synthtune.settings import CommonSettings, SettingsError, env_alias
from synthtune.settings import load_settings as _load

if TYPE_CHECKING:
    from trainer_svc.eval_judge import Judge

_DNS_LABEL = r"^([a-z]([-a-z0-9]{0,61}[a-z0-9])?)?$"  # empty, or an RFC 1035 label


class TrainerSettings(CommonSettings, OutboundSettings):
    listen: str = Field(default="127.0.0.1:50052", validation_alias=env_alias("SYNTHTUNE_TRAINER_LISTEN", "listen"),
                        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
    models_root: Path = Field(default=Path("./var/models"),
                              validation_alias=env_alias("SYNTHTUNE_MODELS_ROOT", "models_root"))
    cancel_grace_s: float = Field(default=60.0, gt=0, le=3600,
                                  validation_alias=env_alias("SYNTHTUNE_TRAINER_CANCEL_GRACE_S", "cancel_grace_s"))
    launcher: Literal["local", "torchrun", "kubeflow"] = Field(default="local", validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_LAUNCHER", "launcher"))
    checkpoint_steps: int = Field(default=50, ge=0, le=1_000_000, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_CHECKPOINT_STEPS", "checkpoint_steps"))
    checkpoint_keep: int = Field(default=2, ge=1, le=100, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_CHECKPOINT_KEEP", "checkpoint_keep"))
    max_auto_resumes: int = Field(default=3, ge=0, le=100, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_MAX_AUTO_RESUMES", "max_auto_resumes"))
    failed_checkpoints_hours: float = Field(default=72.0, ge=0, le=24 * 365, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_FAILED_CHECKPOINTS_HOURS", "failed_checkpoints_hours"))
    mlflow_tracking_uri: str = Field(default="", validation_alias=AliasChoices(
        "SYNTHTUNE_MLFLOW_TRACKING_URI", "mlflow_tracking_uri", "MLFLOW_TRACKING_URI"))
    mlflow_experiment: str = Field(default="synthtune", min_length=1, max_length=256, validation_alias=env_alias(
        "SYNTHTUNE_MLFLOW_EXPERIMENT", "mlflow_experiment"))
    judge_url: str = Field(default="", pattern=r"^(https?://\S+)?$", validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_JUDGE_URL", "judge_url"))
    judge_model: str = Field(default="", max_length=256, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_JUDGE_MODEL", "judge_model"))
    judge_timeout_s: float = Field(default=30.0, gt=0, le=600, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_JUDGE_TIMEOUT_S", "judge_timeout_s"))
    hf_hub_cache: Path | None = Field(
        default=None, validation_alias=AliasChoices("SYNTHTUNE_HF_HUB_CACHE", "hf_hub_cache", "TRANSFORMERS_CACHE"))

    kubeflow_runtime: str = Field(default="", pattern=_DNS_LABEL, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_KUBEFLOW_RUNTIME", "kubeflow_runtime"))
    kubeflow_namespace: str = Field(default="", pattern=_DNS_LABEL, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_KUBEFLOW_NAMESPACE", "kubeflow_namespace"))
    kubeflow_image: str = Field(default="", validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_KUBEFLOW_IMAGE", "kubeflow_image"))
    kubeflow_gpus_per_node: int = Field(default=0, ge=0, le=64, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_KUBEFLOW_GPUS_PER_NODE", "kubeflow_gpus_per_node"))
    kubeflow_gpu_resource: str = Field(default="nvidia.com/gpu", pattern=r"^[a-z0-9.-]+/[a-z0-9._-]+$",
                                       validation_alias=env_alias(
                                           "SYNTHTUNE_TRAINER_KUBEFLOW_GPU_RESOURCE", "kubeflow_gpu_resource"))
    kubeflow_resources: dict[Literal["requests", "limits"], dict[str, str | int | float]] = Field(
        default_factory=dict, validation_alias=env_alias("SYNTHTUNE_TRAINER_KUBEFLOW_RESOURCES", "kubeflow_resources"))
    kubeflow_poll_s: float = Field(default=2.0, gt=0, le=300, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_KUBEFLOW_POLL_S", "kubeflow_poll_s"))
    kubeflow_api_timeout_s: float = Field(default=30.0, gt=0, le=600, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_KUBEFLOW_API_TIMEOUT_S", "kubeflow_api_timeout_s"))
    kubeflow_api_patience_s: float = Field(default=300.0, ge=0, le=86400, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_KUBEFLOW_API_PATIENCE_S", "kubeflow_api_patience_s"))

    @field_validator("kubeflow_resources")
    @classmethod
    def _quantities_as_strings(cls, value: dict) -> dict:
        # Kubernetes quantities are strings ("4", "32Gi"); a bare 4 from JSON would be sent as a number.
        return {kind: {name: str(amount) for name, amount in amounts.items()} for kind, amounts in value.items()}

    @model_validator(mode="after")
    def _judge_needs_both(self) -> TrainerSettings:
        if bool(self.judge_url) != bool(self.judge_model):
            raise ValueError("SYNTHTUNE_TRAINER_JUDGE_URL and SYNTHTUNE_TRAINER_JUDGE_MODEL go together: set both "
                             "(a judge for the generation evals) or neither")
        return self

    @model_validator(mode="after")
    def _judge_passes_the_outbound_policy(self) -> TrainerSettings:
        # Checked once, at start, before any call: the judge is the operator's, so the service
        # refuses to start rather than fail every run's evals later.
        if self.judge_url:
            try:
                self.outbound_policy.check_url(self.judge_url, field="SYNTHTUNE_TRAINER_JUDGE_URL")
            except InvalidArgument as exc:
                raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _kubeflow_needs_a_runtime(self) -> TrainerSettings:
        if self.launcher == "kubeflow" and not self.kubeflow_runtime:
            raise ValueError("SYNTHTUNE_TRAINER_LAUNCHER=kubeflow needs SYNTHTUNE_TRAINER_KUBEFLOW_RUNTIME, "
                             "the TrainingRuntime its TrainJobs use")
        return self

    @property
    def tracking_environment(self) -> dict[str, str]:
        """MLflow's variables for the training processes (transformers' MLflowCallback reads them)."""
        values = {"MLFLOW_EXPERIMENT_NAME": self.mlflow_experiment}
        if self.mlflow_tracking_uri:
            values["MLFLOW_TRACKING_URI"] = self.mlflow_tracking_uri
        return values

    @property
    def hub_environment(self) -> dict[str, str]:
        """Variables the training processes need for the hub cache (they inherit the trainer's)."""
        return {"HF_HUB_CACHE": str(self.hf_hub_cache.resolve())} if self.hf_hub_cache else {}


def judge_from_environment(environ: Mapping[str, str] | None = None) -> Judge | None:
    """The judge of the generation evals, as the training process inherits it from the service's
    environment (the service checked the values at start); None when none is configured."""
    from trainer_svc.eval_judge import Judge

    env = os.environ if environ is None else environ
    url, model = env.get("SYNTHTUNE_TRAINER_JUDGE_URL", "").strip(), env.get("SYNTHTUNE_TRAINER_JUDGE_MODEL", "").strip()
    if not (url and model):
        return None
    return Judge(base_url=url, model=model, token=env.get("SYNTHTUNE_TRAINER_JUDGE_TOKEN", ""),
                 timeout_s=float(env.get("SYNTHTUNE_TRAINER_JUDGE_TIMEOUT_S") or 30))


def load_settings(**overrides) -> TrainerSettings:
    """Read the environment once (keyword overrides win, for tests); raise SettingsError if bad."""
    return _load(TrainerSettings, **overrides)


__all__ = ["SettingsError", "TrainerSettings", "judge_from_environment", "load_settings"]
