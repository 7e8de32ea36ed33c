"""The trainer service seen from the control plane: its client, and proto <-> plain data.

Only this module knows the trainer proto; services get plain values from it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from control_plane.core.clients import ServiceClient, service_client
from control_plane.core.events import EventRecord, event_kind
from control_plane.core.events import event_record as stream_event_record
from control_plane.runs.params import HYPERPARAMETERS, RunParams
from synthtune.trainer.v1 import trainer_pb2 as pb
from synthtune.trainer.v1.trainer_pb2_grpc import TrainerServiceStub

# StartRun reads and tokenizes the datasets and inspects the model before it answers.
START_TIMEOUT_S = 120.0

STATES = {
    pb.RUN_STATE_VALIDATING: "validating",
    pb.RUN_STATE_QUEUED: "queued",
    pb.RUN_STATE_RUNNING: "running",
    pb.RUN_STATE_SUCCEEDED: "succeeded",
    pb.RUN_STATE_FAILED: "failed",
    pb.RUN_STATE_CANCELLED: "cancelled",
}
_ALIASES = {
    # The trainer's own config names, in case its errors name those rather than the proto's.
    "r": "lora_r",
    "alpha": "lora_alpha",
    "dropout": "lora_dropout",
    "lora.r": "lora_r",
    "lora.alpha": "lora_alpha",
    "lora.dropout": "lora_dropout",
    "lora.target_modules": "target_modules",
    "device.device": "device",
    "device.quantize_4bit": "quantize_4bit",
}
# EvalMetrics' optional fields: the token accuracy, and the generation metrics of eval_generate_rows.
OPTIONAL_EVAL_METRICS = (
    "eval_mean_token_accuracy",
    "eval_exact_match",
    "eval_chrf",
    "eval_judge_score",
    "generation_s",
)
_INDEX = re.compile(r"\[\d+\]$|\.\d+$")


class FieldNames(dict):
    """The service names proto fields (or its config's) in its errors; the API calls them
    by its own names: hyperparameters.<name>, datasets, base_model, adapter_name.
    A list index ("datasets[1]") is dropped: the message says which entry."""

    def get(self, key, default=None):
        for candidate in (key, _INDEX.sub("", key)):
            if candidate in self:
                return self[candidate]
        return default


FIELD_NAMES = FieldNames(
    {
        "datasets": "datasets",
        "dataset_refs": "datasets",
        "eval_datasets": "eval_datasets",
        "eval_dataset_refs": "eval_datasets",
        "base_model": "base_model",
        "base_model_id": "base_model",
        "base_model_path": "base_model",
        "adapter_name": "adapter_name",
        "merge_full_model": "merge_full_model",
        **{name: f"hyperparameters.{name}" for name in HYPERPARAMETERS},
        **{f"hyperparameters.{name}": f"hyperparameters.{name}" for name in HYPERPARAMETERS},
        **{f"training.{name}": f"hyperparameters.{name}" for name in HYPERPARAMETERS},
        **{alias: f"hyperparameters.{name}" for alias, name in _ALIASES.items()},
    }
)


def trainer_client() -> ServiceClient:
    return service_client(
        service="trainer",
        address=settings.SYNTHTUNE_TRAINER_ADDR,
        stub_factory=TrainerServiceStub,
        field_names=FIELD_NAMES,
    )


@dataclass(frozen=True)
class RunSnapshot:
    """A run as the service reported it in a reply."""

    run_id: str
    state: str
    base_model: str
    error: str
    step: int
    max_steps: int
    epoch: float
    adapter_path: str
    prompt_format: str
    queue_position: int
    train_rows: int = 0
    eval_rows: int = 0
    truncated_rows: int = 0
    resumed_from_step: int = 0
    resumes: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    eval_datasets: list[dict[str, Any]] = field(default_factory=list)


def start_request(
    params: RunParams,
    *,
    dataset_paths: list[str],
    dataset_refs: list[dict[str, Any]] | None = None,
    eval_dataset_paths: list[str] | None = None,
    eval_dataset_refs: list[dict[str, Any]] | None = None,
) -> pb.StartRunRequest:
    """`dataset_paths` are the datasets' files relative to the data root, in request order;
    `dataset_refs` the exact versions behind them ({"path", "name", "version", "sha256"}), which
    the trainer holds the files to and names in the adapter's manifest. `eval_dataset_paths`
    and `eval_dataset_refs`: the same for the eval datasets (the run's eval split)."""
    hyper = pb.Hyperparameters()
    for name, value in params.hyperparameters.items():  # strings (best_metric, report_to) included
        if name == "target_modules":
            hyper.target_modules.extend(value)
        else:
            setattr(hyper, name, value)
    return pb.StartRunRequest(
        base_model=params.base_model,
        datasets=dataset_paths,
        hyperparameters=hyper,
        adapter_name=params.adapter_name,
        merge_full_model=params.merge_full_model,
        dataset_refs=[pb.DatasetRef(**ref) for ref in dataset_refs or ()],
        eval_datasets=eval_dataset_paths or [],
        eval_dataset_refs=[pb.DatasetRef(**ref) for ref in eval_dataset_refs or ()],
    )


def _json_object(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"unparsed": text[:2000]}
    return value if isinstance(value, dict) else {"value": value}


def run_snapshot(run: pb.Run) -> RunSnapshot:
    return RunSnapshot(
        run_id=run.run_id,
        state=STATES.get(run.state, "validating"),
        base_model=run.base_model,
        error=run.error,
        step=run.step,
        max_steps=run.max_steps,
        epoch=run.epoch,
        adapter_path=run.adapter_path,
        prompt_format=run.prompt_format,
        queue_position=run.queue_position,
        train_rows=run.train_rows,
        eval_rows=run.eval_rows,
        truncated_rows=run.truncated_rows,
        resumed_from_step=run.resumed_from_step,
        resumes=run.resumes,
        config=_json_object(run.config_json),
        metrics=_json_object(run.metrics_json),
        datasets=[_dataset_report(report) for report in run.datasets],
        eval_datasets=[_dataset_report(report) for report in run.eval_datasets],
    )


def _dataset_report(report: pb.DatasetReport) -> dict[str, Any]:
    return {
        "path": report.path,
        "sha256": report.sha256,
        "rows": report.rows,
        "format": report.format,
        "size_bytes": report.size_bytes,
        **({"name": report.name, "version": report.version} if report.name else {}),
    }


def event_record(event: pb.RunEvent) -> EventRecord:
    """A stored-event view of one stream message; payloads are plain JSON the API shows as is."""
    kind = event_kind(event)
    if kind == "state_changed":
        payload: dict[str, Any] = {
            "state": STATES.get(event.state_changed.state, "validating"),
            "error": event.state_changed.error,
        }
    elif kind == "step":
        step = event.step
        payload = {
            "step": step.step,
            "max_steps": step.max_steps,
            "epoch": step.epoch,
            "loss": step.loss,
            "learning_rate": step.learning_rate,
            "grad_norm": step.grad_norm,
            "tokens_per_s": step.tokens_per_s,
            "eta_s": step.eta_s,
        }
    elif kind == "eval":
        ev = event.eval
        payload = {
            "step": ev.step,
            "max_steps": ev.max_steps,
            "epoch": ev.epoch,
            "eval_loss": ev.eval_loss,
            "runtime_s": ev.runtime_s,
            "metric": ev.metric,
            "is_best": ev.is_best,
            # Unset optional metrics (no generation evals, no judge) are absent, not 0.
            **{name: getattr(ev, name) for name in OPTIONAL_EVAL_METRICS if ev.HasField(name)},
        }
    elif kind == "log":
        payload = {"level": event.log.level, "message": event.log.message}
    elif kind == "exported":
        exported = event.exported
        payload = {
            "adapter_path": exported.adapter_path,
            "adapter_name": exported.adapter_name,
            "weights_sha256": exported.weights_sha256,
            "merged_model_path": exported.merged_model_path,
        }
    elif kind == "resumed":
        payload = {"step": event.resumed.step, "resumes": event.resumed.resumes}
    else:
        payload = {}
    return stream_event_record(event, payload)
