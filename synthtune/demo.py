"""`make demo`: the whole pipeline on embedded defaults, through the public REST API,
teaching a real small model a behaviour it lacks and measuring that it learned it.

The model is SmolLM2-135M-Instruct (`make models` converts it offline), served by a
local vLLM CPU server that is both the teacher and, later, the serving target. The
behaviour is synthtune.demo_style's: answer like a pirate, starting with "Arr!".

1. generate: the teacher answers everyday questions under a style instruction
   ("Answer like a pirate …: <question>"), through a generation job;
2. distil: answers that follow the style are kept, the instruction is taken out of
   the question, and the result is uploaded as a new dataset (context distillation);
3. fine-tune: a LoRA adapter on those rows (live progress);
4. hot-load the adapter into vLLM and compare base against fine-tuned on the held-out
   questions, asked plainly: the share of answers in the style, and chrF against the
   teacher's styled answers.
At the end it stops everything; the data and the demo login stay in the data root, so
`make up` shows them afterwards.

Settings (environment): BASE_MODEL (a folder under var/models, or a hub id),
TEACHER_URL / TEACHER_MODEL / TEACHER_TOKEN (a real teacher instead of the local vLLM),
VLLM_URL (a real serving target), DEMO_QUESTIONS (how many of the built-in questions,
default all 128), DEMO_EPOCHS (default 4), JUDGE_URL / JUDGE_MODEL / JUDGE_TOKEN (an
OpenAI-compatible judge for the comparison: the demo then prints its win rate).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from synthtune import demo_style
from synthtune.client import ApiError, Client
from synthtune.local_vllm import VllmServer
from synthtune.stack import REPO, Stack, StackConfig

console = Console()
MODELS_ROOT = REPO / "var" / "models"
DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
MAX_TOKENS = 40  # the teacher's and the comparison's answer length; SmolLM2 on 2 CPU cores: ~25 tokens/s
MIN_TRAINING_ROWS = 12
COMPARE_LIMIT = 50
HYPERPARAMETERS = {"learning_rate": 1e-3, "max_length": 256, "eval_fraction": 0.25}


def base_model() -> str:
    return os.environ.get("BASE_MODEL", DEFAULT_BASE_MODEL)


def _step(number: int, title: str, what: str) -> None:
    console.rule(f"[bold]{number}. {title}")
    console.print(what)


def _progress(label: str) -> Progress:
    return Progress(SpinnerColumn(), TextColumn(f"[bold]{label}[/] {{task.description}}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console)


def _demo_login(stack: Stack) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "control_plane", "demo_user"], cwd=REPO, env=stack.env(),
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _teacher(stack: ExitStack, data_root: Path) -> tuple[str, str, str]:
    if url := os.environ.get("TEACHER_URL"):
        return url, os.environ.get("TEACHER_MODEL", ""), os.environ.get("TEACHER_TOKEN", "")
    name = base_model()
    local = MODELS_ROOT / name
    vllm = VllmServer(local if local.is_dir() else Path(name), served_name=name,
                      log_path=data_root / "logs" / "vllm.log")
    with _progress("vLLM") as bar:
        bar.add_task(f"starting with {name} on the CPU (about 40 s; log: {vllm.log_path})", total=None)
        stack.enter_context(vllm)
    console.print(f"  vLLM ready at {vllm.base_url} in {vllm.startup_s:.0f} s")
    return vllm.base_url, vllm.model, ""


def generate(client: Client, *, base_url: str, model: str, token: str, questions: list[str]) -> str:
    _step(1, "Generate", f"The teacher ({model}) answers {len(questions)} everyday questions, each asked with the "
          f"style instruction [italic]\"{demo_style.STYLE_INSTRUCTION}…\"[/].")
    name = time.strftime("demo-%Y%m%d-%H%M%S")
    job = client.generate_dataset(
        name=name, base_url=base_url, model=model, token=token, mode="from_instructions",
        instructions=[demo_style.styled_instruction(q) for q in questions],
        max_tokens=MAX_TOKENS, temperature=0.0, concurrency=4,
    )
    with _progress("generate") as bar:
        task = bar.add_task(name, total=job["target_rows"])
        for event in client.follow_generation(job["job_id"]):
            payload = event.data["payload"]
            if event.event == "progress":
                bar.update(task, completed=payload["kept"] + payload["dropped"] + payload["failed"],
                           description=f"{name} (kept {payload['kept']}, dropped {payload['dropped']}, "
                                       f"failed {payload['failed']})")
            elif event.event == "state_changed" and payload["state"] in ("failed", "cancelled"):
                raise SystemExit(f"generation {payload['state']}: {payload['error']}")
    dataset = client.dataset(name)
    console.print(f"  dataset [bold]{name}[/]: {dataset['rows']} rows, sha256 {dataset['sha256'][:12]}…")
    return name


def distil(client: Client, name: str) -> str:
    _step(2, "Distil", "Keep the answers that follow the style, take the instruction out of the question "
          "(so the student must learn the style without being asked), and upload that as a new dataset.")
    rows, counts = demo_style.distil_rows(client.dataset_rows(name))
    table = Table(title=f"Training rows: the plain question, the teacher's styled answer (first 4 of {len(rows)})")
    table.add_column("question", overflow="fold", max_width=40)
    table.add_column("teacher's answer", overflow="fold", max_width=70)
    for row in rows[:4]:
        table.add_row(row["instruction"], row["output"][:200])
    console.print(table)
    console.print(f"  kept {counts['kept']} of {counts['rows']}: {counts['off_style']} did not follow the style, "
                  f"{counts['degenerate']} repeated themselves, {counts['duplicate']} duplicated another answer")
    if len(rows) < MIN_TRAINING_ROWS:
        raise SystemExit(f"the teacher followed the style in only {len(rows)} answers, too few to train on "
                         f"(at least {MIN_TRAINING_ROWS}); use a stronger teacher (TEACHER_URL).")
    distilled = f"{name}-distilled"
    client.upload_rows(distilled, rows)
    console.print(f"  dataset [bold]{distilled}[/]: {len(rows)} rows")
    return distilled


def fine_tune(client: Client, *, dataset: str, base_model: str) -> dict:
    epochs = float(os.environ.get("DEMO_EPOCHS", "4"))
    _step(3, "Fine-tune", f"A LoRA adapter on {base_model}, {epochs:g} epochs over {dataset} "
          f"(a quarter of the rows held out), on the CPU.")
    run = client.start_run(datasets=[dataset], base_model=base_model, adapter_name="demo",
                           hyperparameters={**HYPERPARAMETERS, "epochs": epochs})
    with _progress("fine-tune") as bar:
        task = bar.add_task("validating", total=None)
        for event in client.follow_run(run["run_id"]):
            payload = event.data["payload"]
            if event.event == "step":
                bar.update(task, total=payload["max_steps"], completed=payload["step"],
                           description=f"loss {payload['loss']:.3f}, {payload['tokens_per_s'] or 0:.0f} tok/s, "
                                       f"ETA {payload['eta_s'] or 0:.0f} s")
            elif event.event == "state_changed":
                if payload["state"] in ("failed", "cancelled"):
                    raise SystemExit(f"fine-tune {payload['state']}: {payload['error']}")
                bar.update(task, description=payload["state"])
    finished = client.run(run["run_id"])
    adapter = client.adapter(finished["adapter"])
    console.print(f"  adapter [bold]{adapter['name']}[/] at <data root>/{adapter['path']} "
                  f"({finished['train_rows']} training rows, {finished['eval_rows']} held out; "
                  f"final loss {finished['metrics'].get('final_loss') or 0:.3f})")
    return adapter


def load_and_compare(client: Client, *, adapter: dict, dataset: str) -> dict:
    _step(4, "Serve and compare", "Hot-load the adapter into vLLM, then ask base and fine-tuned the held-out "
          "questions plainly, without the style instruction (greedy, the same prompt format as training).")
    loaded = client.load_adapter(adapter["name"])
    console.print(f"  hot-loaded into vLLM as [bold]{loaded.get('served_name', adapter['name'])}[/]")
    if split := adapter["manifest"].get("eval_split"):
        rows_from, title, total = "", "Held-out questions", split["rows"]
    else:  # fewer rows than the trainer's minimum for a held-out split (a small DEMO_QUESTIONS)
        rows_from, title = dataset, "Training questions (too few rows for a held-out split)"
        total = client.dataset(dataset)["rows"]
    rows: list[dict] = []
    summary: dict = {}
    with _progress("compare") as bar:
        task = bar.add_task("base and fine-tuned", total=min(total, COMPARE_LIMIT))
        for event in client.stream_compare_batch(adapter=adapter["name"], dataset=rows_from, limit=COMPARE_LIMIT,
                                                 sampling={"max_tokens": MAX_TOKENS}, **_judge()):
            if event.event == "row":
                rows.append(event.data)
                bar.update(task, completed=len(rows))
            elif event.event == "summary":
                summary = event.data
    table = Table(title=f"{title}: base vs fine-tuned")
    table.add_column("question", overflow="fold", max_width=30)
    table.add_column("base", overflow="fold", max_width=45)
    table.add_column("fine-tuned", overflow="fold", max_width=45)
    for row in rows[:8]:
        table.add_row(row["prompt"][:120], row["base"]["text"][:160], row["adapter"]["text"][:160])
    console.print(table)
    figures = style_figures(rows, summary)
    console.print(
        f"\n[bold]What changed[/], on {figures['rows']} {title.lower()}:\n"
        f"  answers in the style (start with \"{demo_style.STYLE_MARKER}\"): "
        f"base [bold]{figures['base_style']:.0%}[/] → fine-tuned [bold green]{figures['adapter_style']:.0%}[/]\n"
        f"  chrF against the teacher's styled answers: base {figures['base_chrf']:.1f} → "
        f"fine-tuned {figures['adapter_chrf']:.1f}"
    )
    if line := judge_line(summary):
        console.print(line)
    return figures


def _judge() -> dict:
    """The comparison's judge from JUDGE_URL / JUDGE_MODEL / JUDGE_TOKEN, or nothing when JUDGE_URL is unset."""
    if not (url := os.environ.get("JUDGE_URL")):
        return {}
    return {"judge": {"base_url": url, "model": os.environ.get("JUDGE_MODEL", ""),
                      "token": os.environ.get("JUDGE_TOKEN", "")}}


def judge_line(summary: dict) -> str:
    """The judge's verdict as the demo prints it ("" without a judge)."""
    judge = summary.get("judge")
    if not judge:
        return ""
    if judge.get("error"):
        return f"  judge {judge['model']}: no verdict ({judge['error']})"
    judged = judge["wins"] + judge["ties"] + judge["losses"]
    return (f"  judge {judge['model']} (both orders): fine-tuned win rate [bold]{judge['win_rate']:.0%}[/] "
            f"[95% CI {judge['win_rate_low']:.0%}-{judge['win_rate_high']:.0%}] over {judged} judged rows; "
            f"ties {judge['ties']}, losses {judge['losses']}, no verdict {judge['no_verdict']}")


def style_figures(rows: list[dict], summary: dict) -> dict:
    """The demo's summary: the share of answers in the style per side, and chrF per side."""
    count = max(len(rows), 1)
    return {
        "rows": len(rows),
        "base_style": sum(demo_style.follows_style(r["base"]["text"]) for r in rows) / count,
        "adapter_style": sum(demo_style.follows_style(r["adapter"]["text"]) for r in rows) / count,
        "base_chrf": summary.get("base", {}).get("chrf") or 0.0,
        "adapter_chrf": summary.get("adapter", {}).get("chrf") or 0.0,
    }


def _questions() -> list[str]:
    wanted = int(os.environ.get("DEMO_QUESTIONS", len(demo_style.QUESTIONS)))
    return list(demo_style.QUESTIONS[:max(1, wanted)])


def main(config: StackConfig | None = None) -> int:
    """Run the demo; `config` (ports, data root) defaults to `make up`'s."""
    config = config or StackConfig(quiet=True)
    started = time.monotonic()
    console.print(f"[bold]synthtune demo[/]: teach {base_model()} to answer like a pirate, then measure it.")
    with ExitStack() as stack:
        base_url, model, teacher_token = _teacher(stack, config.data_root)
        # The serving target: VLLM_URL for a real setup, else the local vLLM that is also the teacher.
        config.extra_env.setdefault("SYNTHTUNE_VLLM_URL", os.environ.get("VLLM_URL") or base_url.removesuffix("/v1"))
        console.print("[bold]Starting[/] services, control plane and worker…")
        running = stack.enter_context(Stack(config))
        login = _demo_login(running)
        client = stack.enter_context(Client(config.http_url, token=login["token"], timeout_s=120))
        try:
            name = generate(client, base_url=base_url, model=model, token=teacher_token, questions=_questions())
            distilled = distil(client, name)
            adapter = fine_tune(client, dataset=distilled, base_model=base_model())
            load_and_compare(client, adapter=adapter, dataset=distilled)
        except ApiError as exc:
            console.print(f"[red]demo failed:[/] {exc}")
            return 1
        console.print(
            f"\nDone in {time.monotonic() - started:.0f} s. Everything is stopping now; the data stays in "
            f"{config.data_root.resolve()}.\nExplore it with [bold]make up[/] and the admin at "
            f"{config.http_url}/admin/ — login [bold]{login['username']}[/] / [bold]{login['password']}[/] "
            "(shown once; `make demo` makes a new one)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
