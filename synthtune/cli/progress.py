"""Progress bars fed by a job's or run's event stream."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from synthtune.cli.context import EXIT_JOB_FAILED
from synthtune.client import SseEvent


def _bar(console: Console, label: str) -> Progress:
    return Progress(TextColumn(f"[bold]{label}[/] {{task.description}}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def watch_generation(console: Console, events: Iterator[SseEvent], *, total: int, label: str = "generate") -> str:
    """Show a generation (or curate) job's progress; return its final state."""
    state = "queued"
    with _bar(console, label) as bar:
        task = bar.add_task("", total=total)
        for event in events:
            payload = event.data["payload"]
            if event.event == "progress":
                bar.update(task, completed=payload["kept"],
                           description=f"dropped {payload['dropped']}, failed {payload['failed']}")
            elif event.event == "state_changed":
                state = payload["state"]
                if payload.get("error"):
                    console.print(f"  {state}: {payload['error']}")
    return state


_EVAL_SHOWN = (("eval_mean_token_accuracy", "token accuracy", ".3f"), ("eval_exact_match", "exact match", ".2f"),
               ("eval_chrf", "chrF", ".1f"), ("eval_judge_score", "judge", ".2f"))


def eval_summary(payload: dict) -> str:
    """One eval event as a line: the loss, the other metrics it has, and whether it is the best so far."""
    parts = [f"eval loss {payload['eval_loss']:.4f}"]
    parts += [f"{label} {payload[key]:{spec}}" for key, label, spec in _EVAL_SHOWN
              if isinstance(payload.get(key), (int, float))]
    return ", ".join(parts) + (" (best so far)" if payload.get("is_best") else "")


def watch_run(console: Console, events: Iterator[SseEvent]) -> str:
    """Show a run's steps, loss and logs; return its final state."""
    state = "queued"
    with _bar(console, "train") as bar:
        task = bar.add_task("waiting in the queue", total=None)
        for event in events:
            payload = event.data["payload"]
            if event.event == "step":
                eta = f", ETA {payload['eta_s']:.0f}s" if payload.get("eta_s") is not None else ""
                bar.update(task, total=payload["max_steps"], completed=payload["step"],
                           description=f"loss {payload['loss']:.4f}{eta}")
            elif event.event == "eval":
                console.print(f"  step {payload['step']}, epoch {payload['epoch']:.2f}: {eval_summary(payload)}")
            elif event.event == "exported":
                console.print(f"  exported adapter {payload['adapter_name']} ({payload['adapter_path']})")
            elif event.event == "resumed":
                console.print(f"  resumed from step {payload['step']}")
            elif event.event == "state_changed":
                state = payload["state"]
                bar.update(task, description=state)
                if payload.get("error"):
                    console.print(f"  {state}: {payload['error']}")
    return state


def exit_for(state: str) -> None:
    if state in ("failed", "cancelled"):
        sys.exit(EXIT_JOB_FAILED)
