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
    {"type": "eval", "step", "max_steps", "epoch", "eval_loss", "eval_mean_token_accuracy", "runtime_s"}
                                                                                    (every epoch, with eval rows)
    {"type": "resumed", "step", "checkpoint"}          (training goes on from a checkpoint of this run)
    {"type": "cancelled", "step", "max_steps", "epoch"}
    {"type": "exported", "name", "path" (relative to the data root), "weights_sha256", "manifest"}
    {"type": "finished", "status": "succeeded"|"cancelled", "metrics": {...}}
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
from trainer_svc.dataset_prep import (
    DataReport,
    DatasetFile,
    PreparedData,
    check_versions,
    load_tokenizer,
    prepare_data,
)
from trainer_svc.export import ExportResult, Lineage, export_adapter
from trainer_svc.hyperparams import ResolvedConfig, RunConfig, resolve
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
    )
    # Exactness: the files must still be the versions asked for (also when a queued run starts).
    named = check_versions(prepared.report.datasets, run.dataset_refs)
    prepared.report = replace(prepared.report, datasets=named)
    return RunPlan(resolved, targets, prepared.report), tokenizer, prepared


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
    callback = progress_callback(emit, stop)
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
    if not trainer.accelerator.is_main_process:
        trainer.accelerator.wait_for_everyone()  # rank 0 exports meanwhile
        return TrainResult("succeeded", metrics)
    emit.log("exporting the adapter")
    lineage = Lineage(
        run_id=resolved.run.run_id,
        base_model_id=resolved.run.base_model_id,
        base_model_architecture=resolved.model.architecture,
        prompt_format=plan.report.prompt_format,
        datasets=[_manifest_dataset(d) for d in plan.report.datasets],
        hyperparameters=plan.hyperparameters(),
        metrics=metrics,
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
        eval_strategy="epoch" if has_eval else "no",
        logging_strategy="steps",
        logging_steps=1,
        # Every N steps here; ProgressCallback adds one at each epoch's end.
        save_strategy="steps" if training.checkpoint_steps else "no",
        save_steps=training.checkpoint_steps or None,
        save_total_limit=training.checkpoint_keep,
        report_to="none",
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
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

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
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(prepared.train),
        eval_dataset=Dataset.from_list(prepared.eval) if has_eval else None,
        processing_class=_training_tokenizer(tokenizer, prepared.chat_template),
        peft_config=lora,
        callbacks=[callback],
    )
    # With tqdm off, Trainer prints every log dict to stdout; the events carry them instead.
    trainer.remove_callback(PrinterCallback)
    return trainer


def _training_tokenizer(tokenizer: Any, chat_template: str | None) -> Any:
    """The tokenizer trl trains with: the base model's own, or a copy carrying the marked
    training template (dataset_prep.training_chat_template), so the export keeps the original."""
    if chat_template is None:
        return tokenizer
    training = copy.deepcopy(tokenizer)
    training.chat_template = chat_template
    return training


def progress_callback(emit: _Emitter, should_stop: Callable[[], bool]) -> ProgressCallback:
    """A ProgressCallback that is also a transformers TrainerCallback (imported only here)."""
    from transformers import TrainerCallback

    klass = type("ProgressCallback", (ProgressCallback, TrainerCallback), {})
    return klass(emit, should_stop)


class ProgressCallback:
    """Turns Trainer callbacks into step/eval events, and cancels within one step.

    Mixed into transformers.TrainerCallback by `progress_callback`, so that importing
    this module does not import transformers.
    """

    def __init__(self, emit: _Emitter, should_stop: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic):
        self.emit = emit
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

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = self.clock()

    def on_substep_end(self, args, state, control, **kwargs):
        self._check_stop(control)

    def on_step_end(self, args, state, control, **kwargs):
        self._last_step_s = max(self.clock() - self._step_started, 1e-9)
        self._step_s_total += self._last_step_s
        self._steps_timed += 1
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
        self.emit({
            "type": "eval",
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": _number(state.epoch),
            "eval_loss": self._last_eval["eval_loss"],
            "eval_mean_token_accuracy": _number(metrics.get("eval_mean_token_accuracy")),
            "runtime_s": _number(metrics.get("eval_runtime")),
        })


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
