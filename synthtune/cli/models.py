"""synthtune runs start | watch | cancel | resume | list, and synthtune adapters list | show (load and unload
are in synthtune.cli.serving)."""

from __future__ import annotations

import click

from synthtune.cli.context import Context, table
from synthtune.cli.progress import exit_for, watch_run

pass_context = click.make_pass_decorator(Context)

# CLI option -> REST hyperparameter name
_HYPERPARAMETERS = {
    "epochs": "epochs", "lr": "learning_rate", "batch_size": "batch_size",
    "grad_accum": "gradient_accumulation_steps", "max_length": "max_length", "lora_r": "lora_r",
    "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout", "eval_fraction": "eval_fraction",
    "device": "device", "seed": "seed", "nodes": "num_nodes", "processes_per_node": "processes_per_node",
    "keep_checkpoints": "keep_checkpoints", "eval_steps": "eval_steps", "eval_rows": "eval_generate_rows",
    "eval_max_new_tokens": "eval_max_new_tokens", "best_metric": "best_metric", "export_best": "export_best",
    "patience": "early_stopping_patience", "threshold": "early_stopping_threshold", "report_to": "report_to",
}


@click.group()
def runs() -> None:
    """LoRA fine-tuning runs."""


@runs.command()
@click.option("--dataset", "datasets", multiple=True, required=True, help="Dataset name (repeatable).")
@click.option("--eval-dataset", "eval_datasets", multiple=True,
              help="Dataset to evaluate on (repeatable): the eval split is exactly its rows and nothing is "
                   "held out of --dataset [default: --eval-fraction of them held out].")
@click.option("--base-model", help="Base model id or local model name [default: the trainer's].")
@click.option("--adapter-name", default="", help="Stem of the exported adapter's versioned name.")
@click.option("--epochs", type=float)
@click.option("--lr", type=float, help="Learning rate (> 0).")
@click.option("--batch-size", type=int)
@click.option("--grad-accum", type=int, help="Gradient accumulation steps.")
@click.option("--max-length", type=int)
@click.option("--lora-r", type=int)
@click.option("--lora-alpha", type=float)
@click.option("--lora-dropout", type=float)
@click.option("--eval-fraction", type=float)
@click.option("--seed", type=int)
@click.option("--device", type=click.Choice(["auto", "cuda", "mps", "cpu"]))
@click.option("--nodes", type=int, help="Machines [default: 1].")
@click.option("--processes-per-node", type=int,
              help="Training processes per machine [default: one per GPU, else 1; >1 needs the torchrun launcher].")
@click.option("--target-module", "target_modules", multiple=True, help="LoRA target (repeatable) [default: per architecture].")
@click.option("--keep-checkpoints", is_flag=True, default=None,
              help="Keep the checkpoints once the run has succeeded [default: deleted after the export].")
@click.option("--eval-steps", type=int, help="Evaluate every N steps [default: 0, every epoch].")
@click.option("--eval-rows", type=int,
              help="Held-out rows answered at each eval for exact match and chrF [default: 0, none].")
@click.option("--eval-max-new-tokens", type=int, help="Longest generated eval answer [default: 128].")
@click.option("--best-metric", type=click.Choice(["eval_loss", "eval_mean_token_accuracy", "eval_exact_match",
                                                  "eval_chrf", "eval_judge_score"]),
              help="Picks the exported checkpoint and drives early stopping [default: eval_loss].")
@click.option("--export-best/--export-last", default=None,
              help="Export the best checkpoint or the last step [default: best].")
@click.option("--patience", type=int, help="Early stopping: evals without improvement [default: 0, never].")
@click.option("--threshold", type=float, help="Early stopping: the least improvement that counts [default: 0].")
@click.option("--report-to", type=click.Choice(["none", "mlflow", "tensorboard"]),
              help="Experiment tracking [default: none].")
@click.option("--merge", "merge_full_model", is_flag=True, help="Also export a merged full model.")
@click.option("--watch/--no-watch", default=True, show_default=True, help="Follow the run with a progress bar.")
@pass_context
def start(ctx: Context, datasets, eval_datasets, base_model, adapter_name, target_modules, merge_full_model, watch,
          **options) -> None:
    """Start a fine-tune; unset hyperparameters take the per-device defaults."""
    hyperparameters = {_HYPERPARAMETERS[k]: v for k, v in options.items() if v is not None}
    if target_modules:
        hyperparameters["target_modules"] = list(target_modules)
    with ctx.client() as client:
        run = client.start_run(datasets=list(datasets), base_model=base_model, hyperparameters=hyperparameters,
                               adapter_name=adapter_name, merge_full_model=merge_full_model,
                               eval_datasets=list(eval_datasets))
        if not watch:
            ctx.emit(run, text=f"started run {run['run_id']} ({run['state']})")
            return
        _watch(ctx, client, run["run_id"])


@runs.command()
@click.argument("run_id")
@pass_context
def watch(ctx: Context, run_id: str) -> None:
    """Follow a run's progress until it ends (exit 4 if it fails or is cancelled)."""
    with ctx.client() as client:
        _watch(ctx, client, run_id)


def _watch(ctx: Context, client, run_id: str) -> None:
    state = watch_run(ctx.console, client.follow_run(run_id))
    run = client.run(run_id)
    ctx.emit(run, text=f"run {run_id} {run['state']}" + (f": adapter {run['adapter']}" if run.get("adapter") else ""))
    exit_for(state)


@runs.command()
@click.argument("run_id")
@pass_context
def cancel(ctx: Context, run_id: str) -> None:
    """Cancel a queued or running run (it stops within one training step)."""
    with ctx.client() as client:
        run = client.cancel_run(run_id)
    ctx.emit(run, text=f"cancelling run {run_id} ({run['state']})")


@runs.command()
@click.argument("run_id")
@click.option("--watch/--no-watch", default=False, help="follow the resumed run until it ends")
@pass_context
def resume(ctx: Context, run_id: str, watch: bool) -> None:
    """Resume a failed run from its newest checkpoint (or from the start without one)."""
    with ctx.client() as client:
        run = client.resume_run(run_id)
        if watch:
            _watch(ctx, client, run_id)
            return
    ctx.emit(run, text=f"resuming run {run_id} ({run['state']})")


@runs.command("list")
@click.option("--state", help="validating, queued, running, succeeded, failed, cancelled")
@pass_context
def list_runs(ctx: Context, state: str | None) -> None:
    """List runs, newest first."""
    with ctx.client() as client:
        data = client.runs(**({"state": state} if state else {}))
    rows = [[r["run_id"], r["state"], r["base_model"], f"{r['step']}/{r['max_steps']}", r.get("adapter"),
             r["created_at"][:19]] for r in data]
    ctx.emit(data, table=table("Runs", ["run", "state", "base model", "step", "adapter", "created"], rows))


@click.group()
def adapters() -> None:
    """Exported LoRA adapters."""


@adapters.command("list")
@click.option("--base-model")
@pass_context
def list_adapters(ctx: Context, base_model: str | None) -> None:
    """List exported adapters, newest first."""
    with ctx.client() as client:
        data = client.adapters(**({"base_model": base_model} if base_model else {}))
    rows = [[a["name"], a["base_model"], a["prompt_format"], a["path"], a["created_at"][:19]] for a in data]
    ctx.emit(data, table=table("Adapters", ["name", "base model", "format", "path", "created"], rows))


@adapters.command()
@click.argument("name")
@pass_context
def show(ctx: Context, name: str) -> None:
    """One adapter, with its lineage manifest."""
    with ctx.client() as client:
        ctx.emit(client.adapter(name))
