"""One fine-tuning run: trl SFTTrainer + a peft LoRA adapter, then the export.

`main(config, on_event=..., should_stop=...)` is the single implementation: the
service runs it in a child process per run, and `python -m trainer_svc.training
--config run.json` runs it from a shell. `validate_run(config)` is everything that
can be checked before a run is queued, without loading any weights.

How the prompt format decides the loss (synthtune.prompt_format):
- "chat" (the tokenizer has a chat template): rows are {"messages"}; trl's
  assistant_only_loss masks all but the assistant's tokens, and the template's
  `{% generation %}` block includes the end-of-turn token, so the model learns to stop
  (dataset_prep refuses a template that would not train it);
- "instruction" (no template): rows are {"prompt", "completion"}; completion-only loss,
  and trl appends the eos token to every completion, so the model learns to stop.

Events, passed to `on_event` as JSON-ready dicts, each with "type" and "time" (unix s):
    {"type": "log", "level": "info"|"warning", "message": str}
    {"type": "validated", "prompt_format", "data": DataReport.to_dict(), "hyperparameters",
     "target_modules": [...], "linear_layers": int}
    {"type": "started", "max_steps", "epochs", "train_rows", "eval_rows", "device", "dtype",
     "quantize_4bit", "packing", "wrapped_modules", "trainable_params", "total_params",
     "world_size", "effective_batch_size"}
    {"type": "step", "step", "max_steps", "epoch", "loss", "learning_rate", "grad_norm",
     "tokens_per_s", "eta_s", "num_tokens", "mean_token_accuracy", "elapsed_s"}   (every optimizer step)
    {"type": "eval", "step", "max_steps", "epoch", "eval_loss", "eval_mean_token_accuracy", "runtime_s",
     "eval_exact_match", "eval_chrf", "eval_judge_score", "judge_ungraded", "generation_s" (None without
     generation evals; the judge's two without a judge),
     "metric" (best_metric), "is_best" (the best so far: the checkpoint exported unless a later one beats it)}
                                                   (every epoch, or every eval_steps steps, with eval rows)
    {"type": "resumed", "step", "checkpoint"}          (training goes on from a checkpoint of this run)
    {"type": "cancelled", "step", "max_steps", "epoch"}
    {"type": "exported", "name", "path" (relative to the data root), "weights_sha256", "manifest"}
    {"type": "finished", "status": "succeeded"|"cancelled", "metrics": {...}}
Evals, the best checkpoint, early stopping (TrainingOptions eval_steps ... report_to): the
eval split is held out of the datasets (eval_fraction), or, when the run names
eval_datasets, exactly their rows (nothing held out); "held-out" below means either. With
a held-out split every eval saves a checkpoint (transformers' save strategy then follows the
eval strategy, and ProgressCallback adds the resume checkpoints), transformers tracks the best
one on `best_metric` and keeps it through the checkpoint rotation, and with `export_best` (the
default) reloads it after training, so the published adapter is the best step's, not the
last's. EarlyStoppingCallback ends training after `early_stopping_patience` evals without an
improvement. The manifest records every eval ("evals") and which step was exported and why
("best_checkpoint"). Generation evals (eval_generate_rows) answer held-out rows greedily with
the PEFT model being trained, in eval mode, in this process: no second copy of the model.
report_to hands the logs to transformers' MLflow or TensorBoard callback.

A failure raises instead (a SynthtuneError for bad input, anything else for a crash);
the caller reports it.

Packing (the default, TrainingOptions.packing): rows are packed best-fit-decreasing
into bins of max_length tokens and trained padding-free (trl packing="bfd"): position
ids restart per row, and transformers turns them into a block-diagonal mask, so rows
never attend to each other, also with sdpa (no flash-attn needed). Measured on this
CPU (1 thread, rows of 10 to 600 tokens, max_length 512, tokens/s of real tokens over
optimizer steps): 1.3x to 1.6x the old app's padded batches of 2 on tiny-phi3, 1.4x on
an 18M-parameter Phi-3; 1.7x to 2.3x against batches padded to max_length. It is the
default because it never computes a padding token; its cost is that an epoch takes
fewer, larger steps. Without flash attention a padding-free batch is ONE flattened
sequence whose attention grows with the square of its length, so two bins per
micro-step were slower than one on the CPU: CPU and MPS default to batch_size 1.

Cancel: `should_stop()` is polled after every micro-batch and optimizer step; once it
returns true training stops within that step, the per-epoch eval is skipped, and
NOTHING is exported: a partial adapter is discarded, never published to adapters/,
because the proxy would serve it as if it were a finished model, and its manifest
would claim metrics of a run that did not end.

Several processes (DDP, under torchrun: RANK, LOCAL_RANK and WORLD_SIZE set): every
process trains its share of the batches; world rank 0 alone emits events, forwards
library logs, exports and deletes checkpoints. Cancel is collective: at each optimizer
step the processes agree (accelerate's set_trigger / check_trigger, an all-reduce)
whether any was asked to stop, so none stops alone and leaves the others waiting in
the next all-reduce. On the CPU they talk over gloo.

Checkpoints (trainer_svc.checkpoints): every `checkpoint_steps` optimizer steps and at
the end of every epoch (but the last), the newest `checkpoint_keep` kept, in
runs/<run_id>/checkpoints. When that folder holds a complete checkpoint, `main` resumes
from it (optimizer, scheduler, RNG states and the data position restored) and emits
"resumed". A cancelled run deletes its checkpoints, a succeeded one too unless
`keep_checkpoints`; a run that raises keeps them, so it can be resumed.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from synthtune.errors import SynthtuneError
from trainer_svc.checkpoints import checkpoint_step, checkpoints_dir, latest_checkpoint, remove_checkpoints
from trainer_svc.config import judge_from_environment
from trainer_svc.dataset_prep import (
    DataReport,
    DatasetFile,
    PreparedData,
    check_versions,
    load_tokenizer,
    prepare_data,
)
from trainer_svc.export import ExportResult, Lineage, export_adapter
from trainer_svc.hyperparams import MIN_ROWS_FOR_EVAL, ResolvedConfig, RunConfig, resolve
from trainer_svc.lora_targets import TargetPlan, assert_wrapped, resolve_targets

logger = logging.getLogger(__name__)

Event = dict[str, Any]
OnEvent = Callable[[Event], None]
PACKING_STRATEGY = "bfd"  # best-fit decreasing; trl trains it padding-free
DDP_TIMEOUT_S = 1800  # how long a process waits for the others in a collective before failing
_FORWARDED_LOGGERS = ("transformers", "trl", "peft", "accelerate")


@dataclass(frozen=True)
class RunPlan:
    """A validated run: its resolved settings, LoRA targets and data report."""

    resolved: ResolvedConfig
    targets: TargetPlan
    report: DataReport

    def hyperparameters(self) -> dict[str, Any]:
        values = self.resolved.hyperparameters()
        values["lora"]["target_modules"] = list(self.targets.target_modules)
        values["lora"]["wrapped_modules"] = self.targets.expected_count
        values["training"]["packing_strategy"] = PACKING_STRATEGY if self.resolved.training.packing else None
        values["prompt_format"] = self.report.prompt_format
        return values

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_model": {"id": self.resolved.run.base_model_id, "architecture": self.resolved.model.architecture},
            "hyperparameters": self.hyperparameters(),
            "data": self.report.to_dict(),
            "adapter_stem": self.resolved.adapter_stem,
        }


@dataclass(frozen=True)
class TrainResult:
    status: Literal["succeeded", "cancelled"]
    metrics: dict[str, Any] = field(default_factory=dict)
    export: ExportResult | None = None


def validate_run(config: RunConfig | dict[str, Any], *, available_devices: tuple[str, ...] | None = None,
                 gpus_per_node: int | None = None) -> RunPlan:
    """Check everything a run needs before it is queued; raise InvalidArgument naming the field.

    Reads config.json, the tokenizer and the datasets; builds the model on the meta
    device to check the LoRA targets. Loads no weights. Takes a few seconds (imports).
    `available_devices` and `gpus_per_node` describe the machines the run will train on
    when they are not this one (hyperparams.resolve).
    """
    plan, _, _ = _plan(config, available_devices=available_devices, gpus_per_node=gpus_per_node)
    return plan


def _plan(config: RunConfig | dict[str, Any], **machines: Any) -> tuple[RunPlan, Any, PreparedData]:
    run = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    resolved = resolve(run, **machines)
    targets = resolve_targets(resolved.lora.target_modules, resolved.model.path)
    tokenizer = load_tokenizer(resolved.model.path)
    prepared = prepare_data(
        resolved.data_root,
        run.datasets,
        tokenizer,
        max_length=resolved.training.max_length,
        eval_fraction=resolved.training.eval_fraction,
        seed=resolved.training.seed,
        eval_datasets=run.eval_datasets,
    )
    _check_eval_settings(resolved, eval_rows=len(prepared.eval))
    # Exactness: the files must still be the versions asked for (also when a queued run starts).
    named = check_versions(prepared.report.datasets, run.dataset_refs)
    eval_named = check_versions(prepared.report.eval_datasets, run.eval_dataset_refs, field="eval_dataset_refs")
    prepared.report = replace(prepared.report, datasets=named, eval_datasets=eval_named)
    return RunPlan(resolved, targets, prepared.report), tokenizer, prepared


def _check_eval_settings(resolved: ResolvedConfig, *, eval_rows: int) -> None:
    """Settings that need a held-out split are refused without one (before any weights load)."""
    from synthtune.errors import InvalidArgument

    training = resolved.training
    if training.best_metric == "eval_judge_score" and judge_from_environment() is None:
        raise InvalidArgument("best_metric eval_judge_score needs a judge: this trainer has none configured "
                              "(SYNTHTUNE_TRAINER_JUDGE_URL and SYNTHTUNE_TRAINER_JUDGE_MODEL).", field="best_metric")
    if eval_rows:
        return
    why = (f"this run has no held-out split (eval_fraction={training.eval_fraction:g}; fewer than "
           f"{MIN_ROWS_FOR_EVAL} rows hold none out)")
    for name in ("early_stopping_patience", "eval_generate_rows"):
        if getattr(training, name):
            raise InvalidArgument(f"{name} needs held-out rows to evaluate, and {why}.", field=name)


def main(
    config: RunConfig | dict[str, Any],
    *,
    on_event: OnEvent | None = None,
    should_stop: Callable[[], bool] | threading.Event | None = None,
) -> TrainResult:
    """Validate, train, and export one run; see the module docstring for events and cancel."""
    emit = _Emitter(on_event if is_main_process() else None)
    stop = _stop_predicate(should_stop)
    with _forward_library_logs(emit):
        emit.log("validating the run")
        plan, tokenizer, prepared = _plan(config)
        resolved = plan.resolved
        emit({
            "type": "validated",
            "prompt_format": plan.report.prompt_format,
            "data": plan.report.to_dict(),
            "hyperparameters": plan.hyperparameters(),
            "target_modules": list(plan.targets.target_modules),
            "linear_layers": plan.targets.expected_count,
        })
        for warning in plan.report.warnings:
            emit.log(warning, level="warning")
        folder = checkpoints_dir(resolved.data_root, resolved.run.run_id)
        with _tracking_environment(resolved, emit):
            result = _train_and_export(plan, tokenizer, prepared, folder, emit, stop)
        if is_main_process() and (result.status == "cancelled" or not resolved.training.keep_checkpoints):
            remove_checkpoints(folder)
        return result


def _train_and_export(plan: RunPlan, tokenizer: Any, prepared: PreparedData, checkpoints: Path,
                      emit: _Emitter, stop: Callable[[], bool]) -> TrainResult:
    resolved = plan.resolved
    device = resolved.device
    if stop():
        emit({"type": "cancelled", "step": 0, "max_steps": 0, "epoch": 0.0})
        emit({"type": "finished", "status": "cancelled", "metrics": {}})
        return TrainResult("cancelled")
    emit.log(
        f"loading {resolved.run.base_model_id} on {device.kind} ({device.dtype}"
        f"{', 4-bit NF4' if device.quantize_4bit else ''})"
    )
    _seed_everything(resolved.training.seed)
    model = _load_model(resolved)
    callback = progress_callback(emit, stop, checkpoint_steps=resolved.training.checkpoint_steps,
                                 metric=resolved.training.best_metric,
                                 greater_is_better=resolved.training.greater_is_better)
    trainer = _build_trainer(plan, model, tokenizer, prepared, checkpoints, callback)
    callback.accelerator = trainer.accelerator  # for the collective cancel
    wrapped = assert_wrapped(trainer.model, plan.targets)
    trainable, total = _parameter_counts(trainer.model)
    emit({
        "type": "started",
        "max_steps": _planned_steps(trainer),
        "epochs": resolved.training.epochs,
        "train_rows": plan.report.train_rows,
        "eval_rows": plan.report.eval_rows,
        "device": device.kind,
        "dtype": device.dtype,
        "quantize_4bit": device.quantize_4bit,
        "packing": resolved.training.packing,
        "wrapped_modules": wrapped,
        "trainable_params": trainable,
        "total_params": total,
        "world_size": resolved.distributed.world_size,
        "effective_batch_size": resolved.effective_batch_size,
    })
    resume_from = latest_checkpoint(checkpoints)
    if resume_from is not None:
        step = checkpoint_step(resume_from)
        emit({"type": "resumed", "step": step, "checkpoint": resume_from.name})
        emit.log(f"resuming from step {step} ({resume_from.name})")
    output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    metrics = callback.summary()
    metrics.update({
        "train_loss": _number(output.training_loss),
        "steps": state.global_step,
        "max_steps": state.max_steps,
        "epochs": _number(state.epoch),
        "train_runtime_s": _number(output.metrics.get("train_runtime")),
    })
    if callback.cancelled:
        emit({"type": "cancelled", "step": state.global_step, "max_steps": state.max_steps,
              "epoch": _number(state.epoch)})
        emit({"type": "finished", "status": "cancelled", "metrics": metrics})
        return TrainResult("cancelled", metrics)
    best = best_checkpoint_record(trainer, callback, resolved)
    metrics.update({"exported_step": best["exported_step"], "best_step": best["step"],
                    "best_metric": best["metric"], "best_value": best["value"]})
    if best["early_stopped"]:
        emit.log(f"early stopping at step {state.global_step}: {best['metric']} did not improve for "
                 f"{resolved.training.early_stopping_patience} eval(s) in a row")
    if not trainer.accelerator.is_main_process:
        trainer.accelerator.wait_for_everyone()  # rank 0 exports meanwhile
        return TrainResult("succeeded", metrics)
    emit.log(f"exporting the adapter: {best['why']}")
    lineage = Lineage(
        run_id=resolved.run.run_id,
        base_model_id=resolved.run.base_model_id,
        base_model_architecture=resolved.model.architecture,
        prompt_format=plan.report.prompt_format,
        datasets=[_manifest_dataset(d) for d in plan.report.datasets],
        eval_datasets=[_manifest_dataset(d) for d in plan.report.eval_datasets],
        hyperparameters=plan.hyperparameters(),
        metrics=metrics,
        evals=list(callback.evals),
        best_checkpoint=best,
    )
    result = export_adapter(
        trainer.model,
        tokenizer,
        data_root=resolved.data_root,
        stem=resolved.adapter_stem,
        lineage=lineage,
        merge_from=resolved.model.path if resolved.training.merge_full_model else None,
        merge_dtype=device.dtype,
        eval_rows=prepared.eval_rows,
    )
    emit({"type": "exported", "name": result.name, "path": result.relative_path,
          "weights_sha256": result.weights_sha256, "manifest": result.manifest})
    trainer.accelerator.wait_for_everyone()
    emit({"type": "finished", "status": "succeeded", "metrics": metrics})
    return TrainResult("succeeded", metrics, result)


def best_checkpoint_record(trainer: Any, callback: ProgressCallback, resolved: ResolvedConfig) -> dict[str, Any]:
    """Which step's weights the export holds, and why: the manifest's "best_checkpoint"."""
    state, training = trainer.state, resolved.training
    best_dir = state.best_model_checkpoint
    best_step = checkpoint_step(Path(best_dir)) if best_dir else None
    value = next((e.get(training.best_metric) for e in callback.evals if e["step"] == best_step), None)
    loaded = bool(trainer.args.load_best_model_at_end and best_dir)
    exported = best_step if loaded else state.global_step
    evals = len(callback.evals)
    if not evals:
        why = "the last step's weights: no eval ran (no held-out split)"
    elif not training.export_best:
        why = "the last step's weights: export_best is off"
    elif not loaded:
        why = "the last step's weights: no eval checkpoint was kept"
    else:
        word = "highest" if training.greater_is_better else "lowest"
        why = (f"the best checkpoint, step {best_step}: the {word} {training.best_metric} "
               f"({value:.6g}) of {evals} eval(s)" if value is not None else f"the best checkpoint, step {best_step}")
    stopped_early = bool(training.early_stopping_patience) and not callback.cancelled \
        and state.global_step < state.max_steps
    return {
        "exported_step": exported, "step": best_step, "metric": training.best_metric, "value": value,
        "greater_is_better": training.greater_is_better, "evals": evals, "why": why,
        "last_step": state.global_step, "early_stopped": stopped_early,
        "early_stopping": ({"patience": training.early_stopping_patience,
                            "threshold": training.early_stopping_threshold, "stopped_at_step": state.global_step}
                           if training.early_stopping_patience else None),
    }


@contextmanager
def _tracking_environment(resolved: ResolvedConfig, emit: _Emitter) -> Iterator[None]:
    """The variables transformers' MLflow / TensorBoard callbacks read, for this run only.

    MLflow: MLFLOW_TRACKING_URI as the service passes it (SYNTHTUNE_MLFLOW_TRACKING_URI), else a
    file store under the data root, which needs no server; credentials stay in MLflow's own
    variables (MLFLOW_TRACKING_TOKEN, ...), inherited, never written to the run or logged.
    """
    report_to = resolved.training.report_to
    if report_to == "none":
        yield
        return
    run_dir = resolved.data_root.resolve() / "runs" / resolved.run.run_id
    values: dict[str, str] = {}
    if report_to == "mlflow":
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (resolved.data_root.resolve() / "mlruns").as_uri()
        values = {"MLFLOW_TRACKING_URI": uri,
                  "MLFLOW_EXPERIMENT_NAME": os.environ.get("MLFLOW_EXPERIMENT_NAME") or "synthtune"}
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store in maintenance mode and refuses it unless asked; it is
            # what works with mlflow-skinny and no server (a database store needs SQLAlchemy).
            values["MLFLOW_ALLOW_FILE_STORE"] = "true"
        emit.log(f"reporting to MLflow at {redact_uri(uri)}, experiment {values['MLFLOW_EXPERIMENT_NAME']}, "
                 f"run {resolved.run.run_id}")
    else:
        values = {"TENSORBOARD_LOGGING_DIR": str(run_dir / "tensorboard")}
        emit.log(f"reporting to TensorBoard in runs/{resolved.run.run_id}/tensorboard")
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def redact_uri(uri: str) -> str:
    """`uri` without a user or password in it (https://user:secret@host -> https://***@host)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _manifest_dataset(info: DatasetFile) -> dict[str, Any]:
    """A dataset as the manifest names it; with its version (name, version) when the run had one."""
    entry: dict[str, Any] = {"path": info.path, "sha256": info.sha256, "rows": info.rows, "format": info.format}
    if info.name:
        entry.update(name=info.name, version=info.version)
    return entry


def _load_model(resolved: ResolvedConfig) -> Any:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils.logging import disable_progress_bar

    disable_progress_bar()  # "Loading weights" bars on stderr; the events say what happens
    device = resolved.device
    dtype = getattr(torch, device.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if device.quantize_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        # The whole model on this process's own GPU (Trainer does not move quantized models);
        # {"": 0} for every rank would make DDP fall back to one process (trl#921, accelerate#1840).
        kwargs["device_map"] = {"": local_rank()}
    model = AutoModelForCausalLM.from_pretrained(resolved.model.path, **kwargs)
    if device.quantize_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=resolved.training.gradient_checkpointing
        )
    return model


def build_sft_config(resolved: ResolvedConfig, output_dir: Path, *, prompt_format: str, has_eval: bool) -> Any:
    """The SFTConfig a run trains with (also used by the benchmarks, so they measure the same thing)."""
    from trl import SFTConfig

    device, training = resolved.device, resolved.training
    # With a held-out split every eval saves a checkpoint, so the best one exists to be kept and
    # reloaded (transformers wants the save strategy to follow the eval strategy for that); the
    # resume checkpoints every checkpoint_steps and at each epoch's end are ProgressCallback's.
    eval_strategy = ("steps" if training.eval_steps else "epoch") if has_eval else "no"
    if has_eval:
        save: dict[str, Any] = {"save_strategy": eval_strategy, "save_steps": training.eval_steps or None}
    else:
        save = {"save_strategy": "steps" if training.checkpoint_steps else "no",
                "save_steps": training.checkpoint_steps or None}
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=training.epochs,
        learning_rate=training.learning_rate,
        lr_scheduler_type=training.lr_scheduler,
        warmup_steps=training.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio; warmup_ratio is gone
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        # transformers 5.23 renamed gradient_checkpointing (trl still defaults the old name to True).
        activation_checkpointing=training.gradient_checkpointing,
        max_length=training.max_length,
        packing=training.packing,
        packing_strategy=PACKING_STRATEGY,
        assistant_only_loss=prompt_format == "chat",
        completion_only_loss=True if prompt_format == "instruction" else None,
        seed=training.seed,
        data_seed=training.seed,
        # trl defaults bf16=True; only CUDA trains in mixed precision here.
        bf16=device.kind == "cuda" and device.dtype == "bfloat16",
        fp16=device.kind == "cuda" and device.dtype == "float16",
        use_cpu=device.use_cpu,
        eval_strategy=eval_strategy,
        eval_steps=training.eval_steps or None,
        logging_strategy="steps",
        logging_steps=1,
        **save,
        save_total_limit=training.checkpoint_keep,
        metric_for_best_model=training.best_metric if has_eval else None,
        greater_is_better=training.greater_is_better if has_eval else None,
        load_best_model_at_end=has_eval and training.export_best,
        report_to=[] if training.report_to == "none" else [training.report_to],
        run_name=resolved.run.run_id,
        disable_tqdm=True,
        dataloader_num_workers=0,
        # Several processes (torchrun): gloo on the CPU (NCCL on CUDA, the default); every
        # parameter takes part in every step, so DDP need not search for unused ones.
        ddp_backend="gloo" if device.kind == "cpu" and resolved.distributed.world_size > 1 else None,
        ddp_find_unused_parameters=False,
        ddp_timeout=DDP_TIMEOUT_S,
    )


def _build_trainer(plan: RunPlan, model: Any, tokenizer: Any, prepared: PreparedData, output_dir: Path,
                   callback: ProgressCallback) -> Any:
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar
    from peft import LoraConfig
    from transformers.trainer_callback import EarlyStoppingCallback, PrinterCallback

    disable_progress_bar()  # trl's map() bars would go to stderr; the events say what happens
    resolved = plan.resolved
    lora = LoraConfig(
        r=resolved.lora.r,
        lora_alpha=resolved.lora.alpha,
        lora_dropout=resolved.lora.dropout,
        target_modules=list(plan.targets.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    has_eval = bool(prepared.eval)
    args = build_sft_config(resolved, output_dir, prompt_format=plan.report.prompt_format, has_eval=has_eval)
    training = resolved.training
    callbacks: list[Any] = [callback]
    if has_eval and training.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=training.early_stopping_patience,
                                               early_stopping_threshold=training.early_stopping_threshold))
    processing_class = _training_tokenizer(tokenizer, prepared.chat_template)
    generation = None
    if has_eval and training.eval_generate_rows:
        from trainer_svc.eval_generation import GenerationEval

        generation = GenerationEval(prepared.eval[:training.eval_generate_rows], tokenizer=processing_class,
                                    prompt_format=plan.report.prompt_format,
                                    max_new_tokens=training.eval_max_new_tokens, judge=judge_from_environment())
    trainer = trainer_class(generation)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(prepared.train),
        eval_dataset=Dataset.from_list(prepared.eval) if has_eval else None,
        processing_class=processing_class,
        peft_config=lora,
        callbacks=callbacks,
    )
    # With tqdm off, Trainer prints every log dict to stdout; the events carry them instead.
    trainer.remove_callback(PrinterCallback)
    return trainer


def trainer_class(generation: Any = None) -> type:
    """trl's SFTTrainer; with a GenerationEval, one whose evals also report its generation metrics
    (added to the eval metrics before callbacks, early stopping and the best-checkpoint choice see them)."""
    from trl import SFTTrainer

    if generation is None:
        return SFTTrainer

    class GeneratingSFTTrainer(SFTTrainer):
        def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                            metric_key_prefix="eval"):
            output = super().evaluation_loop(dataloader, description, prediction_loss_only=prediction_loss_only,
                                             ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
            if metric_key_prefix == "eval":
                output.metrics.update(generation(self.model))
            return output

    return GeneratingSFTTrainer


def _training_tokenizer(tokenizer: Any, chat_template: str | None) -> Any:
    """The tokenizer trl trains with: the base model's own, or a copy carrying the marked
    training template (dataset_prep.training_chat_template), so the export keeps the original."""
    if chat_template is None:
        return tokenizer
    training = copy.deepcopy(tokenizer)
    training.chat_template = chat_template
    return training


def progress_callback(emit: _Emitter, should_stop: Callable[[], bool], **options: Any) -> ProgressCallback:
    """A ProgressCallback that is also a transformers TrainerCallback (imported only here)."""
    from transformers import TrainerCallback

    klass = type("ProgressCallback", (ProgressCallback, TrainerCallback), {})
    return klass(emit, should_stop, **options)


class ProgressCallback:
    """Turns Trainer callbacks into step/eval events, and cancels within one step.

    Mixed into transformers.TrainerCallback by `progress_callback`, so that importing
    this module does not import transformers.
    """

    def __init__(self, emit: _Emitter, should_stop: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic, *, checkpoint_steps: int = 0,
                 metric: str = "eval_loss", greater_is_better: bool = False):
        self.emit = emit
        self.checkpoint_steps = checkpoint_steps
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.evals: list[dict[str, Any]] = []  # every eval event, for the manifest
        self._best: float | None = None
        self.should_stop = should_stop
        self.clock = clock
        self.accelerator: Any = None  # set once the Trainer exists; several processes cancel together
        self.cancelled = False
        self.train_started = 0.0
        self._step_started = 0.0
        self._last_step_s = 0.0
        self._step_s_total = 0.0
        self._steps_timed = 0
        self._tokens_seen = 0
        self._last_loss: float | None = None
        self._last_eval: dict[str, Any] = {}

    def summary(self) -> dict[str, Any]:
        """Throughput over the optimizer steps only (evals and set-up excluded)."""
        seconds = self._step_s_total
        return {
            "final_loss": self._last_loss,
            "eval_loss": self._last_eval.get("eval_loss"),
            "num_tokens": self._tokens_seen,
            "step_time_s": round(seconds, 3),
            "tokens_per_s": round(self._tokens_seen / seconds, 1) if seconds > 0 else None,
        }

    def _check_stop(self, control: Any, *, step_end: bool = False) -> None:
        accelerator = self.accelerator
        if accelerator is not None and accelerator.num_processes > 1:
            # Collective: only at optimizer steps, which every process reaches the same number of times.
            if not step_end:
                return
            if not self.cancelled and self.should_stop():
                accelerator.set_trigger()
            asked = accelerator.check_trigger()
        else:
            asked = self.should_stop()
        if not self.cancelled and asked:
            self.cancelled = True
            self.emit.log("cancel requested: stopping after this step")
        if self.cancelled:
            control.should_training_stop = True

    def on_train_begin(self, args, state, control, **kwargs):
        self.train_started = self.clock()
        self._best = state.best_metric  # a resumed run goes on from its checkpoint's best

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = self.clock()

    def on_substep_end(self, args, state, control, **kwargs):
        self._check_stop(control)

    def on_step_end(self, args, state, control, **kwargs):
        self._last_step_s = max(self.clock() - self._step_started, 1e-9)
        self._step_s_total += self._last_step_s
        self._steps_timed += 1
        # The resume checkpoints, whatever the save strategy (with evals it follows them).
        if self.checkpoint_steps and state.global_step % self.checkpoint_steps == 0:
            control.should_save = True
        self._check_stop(control, step_end=True)

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.cancelled:  # DefaultFlowCallback asked for the per-epoch eval; a cancelled run skips it
            control.should_evaluate = False
        elif state.global_step < state.max_steps:  # a checkpoint per epoch; the last is the export
            control.should_save = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:  # eval logs come through on_evaluate; the final summary is read from train()
            return
        tokens = int(logs.get("num_tokens", self._tokens_seen))
        step_tokens = max(tokens - self._tokens_seen, 0)
        self._tokens_seen = tokens
        self._last_loss = _number(logs["loss"])
        mean_step_s = self._step_s_total / max(self._steps_timed, 1)
        self.emit({
            "type": "step",
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": _number(state.epoch),
            "loss": self._last_loss,
            "learning_rate": _number(logs.get("learning_rate")),
            "grad_norm": _number(logs.get("grad_norm")),
            "tokens_per_s": round(step_tokens / self._last_step_s, 1) if self._last_step_s else None,
            "eta_s": round(mean_step_s * max(state.max_steps - state.global_step, 0), 1),
            "num_tokens": tokens,
            "mean_token_accuracy": _number(logs.get("mean_token_accuracy")),
            "elapsed_s": round(self.clock() - self.train_started, 3),
        })

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        self._last_eval = {"eval_loss": _number(metrics.get("eval_loss"))}
        value = _number(metrics.get(self.metric))
        # Strictly better, as transformers picks its best step (this runs just before it does).
        is_best = value is not None and (self._best is None or (
            value > self._best if self.greater_is_better else value < self._best))
        if is_best:
            self._best = value
        event = {
            "type": "eval",
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": _number(state.epoch),
            "eval_loss": self._last_eval["eval_loss"],
            "eval_mean_token_accuracy": _number(metrics.get("eval_mean_token_accuracy")),
            "eval_exact_match": _number(metrics.get("eval_exact_match")),
            "eval_chrf": _number(metrics.get("eval_chrf")),
            "eval_judge_score": _number(metrics.get("eval_judge_score")),
            "judge_ungraded": _number(metrics.get("eval_judge_ungraded")),
            "runtime_s": _number(metrics.get("eval_runtime")),
            "generation_s": _number(metrics.get("eval_generation_runtime")),
            "metric": self.metric,
            "is_best": is_best,
        }
        self.evals.append({k: v for k, v in event.items() if k not in ("type", "max_steps")})
        self.emit(event)


class _Emitter:
    def __init__(self, on_event: OnEvent | None):
        self._on_event = on_event

    def __call__(self, event: Event) -> None:
        event = {**event, "time": round(time.time(), 3)}
        logger.debug("event %s", event["type"])
        if self._on_event is not None:
            self._on_event(event)

    def log(self, message: str, *, level: str = "info") -> None:
        self({"type": "log", "level": level, "message": message})


class _EventLogHandler(logging.Handler):
    """Library warnings (trl, transformers, peft) become "log" events of the run."""

    def __init__(self, emit: _Emitter):
        super().__init__(level=logging.WARNING)
        self._emit = emit
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "on", False):  # an on_event that logs must not recurse
            return
        self._busy.on = True
        try:
            self._emit.log(f"{record.name}: {record.getMessage()}", level="warning")
        except Exception:  # a log line must never break training
            pass
        finally:
            self._busy.on = False


@contextmanager
def _forward_library_logs(emit: _Emitter) -> Iterator[None]:
    handler = _EventLogHandler(emit)
    loggers = [logging.getLogger(name) for name in _FORWARDED_LOGGERS]
    for lib_logger in loggers:
        lib_logger.addHandler(handler)
    try:
        yield
    finally:
        for lib_logger in loggers:
            lib_logger.removeHandler(handler)


def is_main_process() -> bool:
    """World rank 0, or the only process (torchrun sets RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _stop_predicate(should_stop: Callable[[], bool] | threading.Event | None) -> Callable[[], bool]:
    if should_stop is None:
        return lambda: False
    if isinstance(should_stop, threading.Event):
        return should_stop.is_set
    return should_stop


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)  # peft initialises the adapter randomly; trl seeds again before wrapping


def _planned_steps(trainer: Any) -> int:
    """Optimizer steps train() will take (Trainer only fills state.max_steps once training starts)."""
    args = trainer.args
    batches = len(trainer.get_train_dataloader())
    per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)
    return math.ceil(args.num_train_epochs * per_epoch)


def _parameter_counts(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def cli(argv: list[str] | None = None) -> int:
    """`python -m trainer_svc.training --config run.json`: events as JSON lines on stdout.

    SIGTERM or SIGINT cancels (within one step). Exit codes: 0 succeeded, 3 cancelled,
    2 invalid input (the error as JSON on stderr), 1 anything else.
    """
    parser = argparse.ArgumentParser(description="Fine-tune one LoRA adapter (trl + peft).")
    parser.add_argument("--config", type=Path, required=True, help="a RunConfig as JSON")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def print_event(event: Event) -> None:
        print(json.dumps(event), flush=True)

    try:
        result = main(json.loads(args.config.read_text()), on_event=print_event, should_stop=stop)
    except SynthtuneError as exc:
        print(json.dumps({"message": exc.message, "code": exc.code, "extra": exc.extra}), file=sys.stderr)
        return 2
    return 0 if result.status == "succeeded" else 3


if __name__ == "__main__":
    sys.exit(cli())
