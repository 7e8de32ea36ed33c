"""TrainerService over gRPC: proto <-> domain translation only.

Domain errors propagate; the shared interceptor turns them into statuses. Field
names in errors are renamed to the request's own (hyperparameters.learning_rate).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from synthtune.errors import SynthtuneError
from synthtune.eventlog import Event
from synthtune.trainer.v1 import trainer_pb2 as pb
from synthtune.trainer.v1 import trainer_pb2_grpc
from trainer_svc.manager import RunManager, RunRequest
from trainer_svc.runs import Run, RunState

SERVICE_NAME = "synthtune.trainer.v1.TrainerService"

_STATES = {
    RunState.VALIDATING: pb.RUN_STATE_VALIDATING,
    RunState.QUEUED: pb.RUN_STATE_QUEUED,
    RunState.RUNNING: pb.RUN_STATE_RUNNING,
    RunState.SUCCEEDED: pb.RUN_STATE_SUCCEEDED,
    RunState.FAILED: pb.RUN_STATE_FAILED,
    RunState.CANCELLED: pb.RUN_STATE_CANCELLED,
}
# Hyperparameters fields -> (section of the run config, its name there).
_HYPERPARAMETERS = {
    "lora_r": ("lora", "r"),
    "lora_alpha": ("lora", "alpha"),
    "lora_dropout": ("lora", "dropout"),
    "epochs": ("training", "epochs"),
    "learning_rate": ("training", "learning_rate"),
    "batch_size": ("training", "batch_size"),
    "gradient_accumulation_steps": ("training", "gradient_accumulation_steps"),
    "max_length": ("training", "max_length"),
    "eval_fraction": ("training", "eval_fraction"),
    "packing": ("training", "packing"),
    "seed": ("training", "seed"),
    "quantize_4bit": ("device", "quantize_4bit"),
    "num_nodes": ("distributed", "num_nodes"),
    "processes_per_node": ("distributed", "processes_per_node"),
    "keep_checkpoints": ("training", "keep_checkpoints"),
    "eval_steps": ("training", "eval_steps"),
    "eval_generate_rows": ("training", "eval_generate_rows"),
    "eval_max_new_tokens": ("training", "eval_max_new_tokens"),
    "export_best": ("training", "export_best"),
    "early_stopping_patience": ("training", "early_stopping_patience"),
    "early_stopping_threshold": ("training", "early_stopping_threshold"),
}
# Plain string fields: empty is unset.
_STRINGS = {"best_metric": ("training", "best_metric"), "report_to": ("training", "report_to")}
# Run-config field names in domain errors -> request field names.
_FIELD_NAMES = {name: f"hyperparameters.{proto}" for proto, (_, name) in (_HYPERPARAMETERS | _STRINGS).items()}
_FIELD_NAMES |= {"target_modules": "hyperparameters.target_modules", "device": "hyperparameters.device",
                 "base_model_id": "base_model", "base_model_path": "base_model"}


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, manager: RunManager):
        self._manager = manager

    async def StartRun(self, request: pb.StartRunRequest, context) -> pb.StartRunResponse:
        try:
            run = await self._manager.start(request_from_proto(request))
        except SynthtuneError as exc:
            if exc.field in _FIELD_NAMES:
                exc.field = exc.extra["field"] = _FIELD_NAMES[exc.field]
            raise
        return pb.StartRunResponse(run=self._run(run))

    async def WatchRun(self, request: pb.WatchRunRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RunEvent]:
        async for event in self._manager.watch(request.run_id, after_seq=request.after_seq):
            if context.cancelled():
                return
            yield event_to_proto(request.run_id, event)

    async def GetRun(self, request: pb.GetRunRequest, context) -> pb.GetRunResponse:
        return pb.GetRunResponse(run=self._run(self._manager.get(request.run_id)))

    async def ListRuns(self, request: pb.ListRunsRequest, context) -> pb.ListRunsResponse:
        return pb.ListRunsResponse(runs=[self._run(run) for run in self._manager.list()])

    async def CancelRun(self, request: pb.CancelRunRequest, context) -> pb.CancelRunResponse:
        return pb.CancelRunResponse(run=self._run(await self._manager.cancel(request.run_id)))

    async def ResumeRun(self, request: pb.ResumeRunRequest, context) -> pb.ResumeRunResponse:
        return pb.ResumeRunResponse(run=self._run(await self._manager.resume(request.run_id)))

    def _run(self, run: Run) -> pb.Run:
        return run_to_proto(run, queue_position=self._manager.queue_position(run))


def request_from_proto(request: pb.StartRunRequest) -> RunRequest:
    hp = request.hyperparameters
    sections: dict[str, dict] = {"lora": {}, "training": {}, "device": {}, "distributed": {}}
    for proto_name, (section, name) in _HYPERPARAMETERS.items():
        if hp.HasField(proto_name):
            sections[section][name] = getattr(hp, proto_name)
    if hp.target_modules:
        targets = list(hp.target_modules)
        sections["lora"]["target_modules"] = "all-linear" if targets == ["all-linear"] else targets
    if hp.device:
        sections["device"]["device"] = hp.device
    for proto_name, (section, name) in _STRINGS.items():
        if getattr(hp, proto_name):
            sections[section][name] = getattr(hp, proto_name)
    refs = _refs(request.dataset_refs)
    eval_refs = _refs(request.eval_dataset_refs)
    # Refs alone are enough; with both, RunConfig checks they name the same paths.
    datasets = list(request.datasets) or [ref["path"] for ref in refs]
    eval_datasets = list(request.eval_datasets) or [ref["path"] for ref in eval_refs]
    return RunRequest(
        base_model=request.base_model, datasets=datasets, adapter_name=request.adapter_name,
        merge_full_model=request.merge_full_model, dataset_refs=refs, eval_datasets=eval_datasets,
        eval_dataset_refs=eval_refs, **sections,
    )


def _refs(refs) -> list[dict]:
    return [{"path": r.path, "name": r.name, "version": r.version, "sha256": r.sha256} for r in refs]


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def run_to_proto(run: Run, *, queue_position: int = 0) -> pb.Run:
    return pb.Run(
        run_id=run.run_id, state=_STATES[run.state], base_model=run.base_model,
        datasets=[pb.DatasetReport(**d) for d in run.datasets], config_json=json.dumps(run.plan),
        eval_datasets=[pb.DatasetReport(**d) for d in run.eval_datasets],
        error=run.error, step=run.step, max_steps=run.max_steps, epoch=run.epoch,
        adapter_path=run.adapter_path, prompt_format=run.prompt_format,
        created_at=_timestamp(run.created_at), updated_at=_timestamp(run.updated_at),
        queue_position=queue_position, metrics_json=json.dumps(run.metrics),
        train_rows=run.train_rows, eval_rows=run.eval_rows, truncated_rows=run.truncated_rows,
        resumed_from_step=run.resumed_from_step, resumes=run.resumes,
    )


def event_to_proto(run_id: str, event: Event) -> pb.RunEvent:
    message = pb.RunEvent(seq=event.seq, time=_timestamp(event.time), run_id=run_id)
    data = {k: v for k, v in event.data.items() if v is not None}
    if event.kind == "state_changed":
        message.state_changed.CopyFrom(pb.StateChanged(state=_STATES[RunState(data["state"])], error=data.get("error", "")))
    elif event.kind == "step":
        message.step.CopyFrom(pb.StepMetrics(**data))
    elif event.kind == "eval":
        message.eval.CopyFrom(pb.EvalMetrics(**data))
    elif event.kind == "log":
        message.log.CopyFrom(pb.LogLine(**data))
    elif event.kind == "exported":
        message.exported.CopyFrom(pb.ArtifactExported(**data))
    elif event.kind == "resumed":
        message.resumed.CopyFrom(pb.Resumed(**data))
    return message
