"""`make demo`: the whole pipeline on embedded defaults, through the public REST API.

It starts a local vLLM CPU server with the tiny model (the teacher, and later
the serving target), the services, the control plane and the worker; makes a
demo login; then generates a self-instruct dataset, fine-tunes a LoRA adapter
on it (live progress bars), hot-loads the adapter into vLLM and prints base
and fine-tuned outputs side by side on the held-out rows. At the end it stops everything cleanly; the data and
the demo login stay in the data root, so `make up` shows them afterwards.

Real setups: set TEACHER_URL / TEACHER_MODEL (and TEACHER_TOKEN) to use a real
endpoint instead of the local vLLM.
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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from synthtune.client import ApiError, Client
from synthtune.local_vllm import VllmServer
from synthtune.stack import REPO, Stack, StackConfig

console = Console()
MODELS_ROOT = REPO / "var" / "models"
BASE_MODEL = os.environ.get("BASE_MODEL", "tiny-phi3")  # a folder name under var/models, or a hub id


def _demo_login(stack: Stack) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "control_plane", "demo_user"], cwd=REPO, env=stack.env(),
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _teacher(stack: ExitStack, data_root: Path) -> tuple[str, str, str]:
    if url := os.environ.get("TEACHER_URL"):
        return url, os.environ.get("TEACHER_MODEL", ""), os.environ.get("TEACHER_TOKEN", "")
    local = MODELS_ROOT / BASE_MODEL
    console.print(f"[bold]Starting vLLM[/] with {BASE_MODEL} — about 30 s on a CPU…")
    vllm = stack.enter_context(VllmServer(local if local.is_dir() else Path(BASE_MODEL), served_name=BASE_MODEL,
                                          log_path=data_root / "logs" / "vllm.log"))
    console.print(f"  vLLM ready at {vllm.base_url} in {vllm.startup_s:.0f} s")
    return vllm.base_url, vllm.model, ""


def generate(client: Client, *, base_url: str, model: str, token: str) -> str:
    name = time.strftime("demo-%Y%m%d-%H%M%S")
    job = client.generate_dataset(
        name=name, base_url=base_url, model=model, token=token, mode="self_instruct",
        topic="everyday questions about the command line", num_rows=int(os.environ.get("DEMO_ROWS", "24")),
        max_tokens=48, temperature=0.8, concurrency=4,
    )
    with Progress(TextColumn("[bold]generate[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(name, total=job["target_rows"])
        for event in client.follow_generation(job["job_id"]):
            payload = event.data["payload"]
            if event.event == "progress":
                bar.update(task, completed=payload["kept"],
                           description=f"{name} (dropped {payload['dropped']}, failed {payload['failed']})")
            elif event.event == "state_changed" and payload["state"] in ("failed", "cancelled"):
                raise SystemExit(f"generation {payload['state']}: {payload['error']}")
    dataset = client.dataset(name)
    console.print(f"  dataset [bold]{name}[/]: {dataset['rows']} rows, sha256 {dataset['sha256'][:12]}…, "
                  f"{dataset['size_bytes']} bytes at <data root>/{dataset['path']}")
    return name


def fine_tune(client: Client, *, dataset: str, base_model: str) -> dict:
    run = client.start_run(datasets=[dataset], base_model=base_model, adapter_name="demo",
                           hyperparameters={"epochs": float(os.environ.get("DEMO_EPOCHS", "3"))})
    with Progress(TextColumn("[bold]fine-tune[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"{base_model} on {dataset}", total=None)
        for event in client.follow_run(run["run_id"]):
            payload = event.data["payload"]
            if event.event == "step":
                bar.update(task, total=payload["max_steps"], completed=payload["step"],
                           description=f"loss {payload['loss']:.3f}, {payload['tokens_per_s'] or 0:.0f} tok/s")
            elif event.event == "state_changed" and payload["state"] in ("failed", "cancelled"):
                raise SystemExit(f"fine-tune {payload['state']}: {payload['error']}")
    adapter = client.adapter(client.run(run["run_id"])["adapter"])
    console.print(f"  adapter [bold]{adapter['name']}[/] at <data root>/{adapter['path']} "
                  f"({adapter['prompt_format']} format, base {adapter['base_model']})")
    return adapter


def load_and_compare(client: Client, *, adapter: dict, dataset: str) -> None:
    loaded = client.load_adapter(adapter["name"])
    console.print(f"  hot-loaded into vLLM as [bold]{loaded.get('served_name', adapter['name'])}[/]")
    if adapter["manifest"].get("eval_split"):
        rows, title = "", "Held-out rows"
    else:  # fewer rows than the trainer's minimum for a held-out split (a small DEMO_ROWS)
        rows, title = dataset, "Training rows (too few rows for a held-out split)"
    batch = client.compare_batch(adapter=adapter["name"], dataset=rows, limit=5, sampling={"max_tokens": 32})
    table = Table(title=f"{title}: base vs fine-tuned (greedy, same prompt format as training)")
    table.add_column("prompt", overflow="fold", max_width=36)
    table.add_column("base", overflow="fold", max_width=36)
    table.add_column("fine-tuned", overflow="fold", max_width=36)
    for row in batch["rows"]:
        table.add_row(row["prompt"][:120], row["base"]["text"][:120], row["adapter"]["text"][:120])
    console.print(table)
    summary = batch["summary"]
    for side in ("base", "adapter"):
        s = summary[side]
        console.print(f"  {side:>8}: exact match {s['exact_match_rate']:.0%}, chrF {s['chrf']:.1f}, "
                      f"latency p50 {s['latency_p50_ms']:.0f} ms")


def show_rows(client: Client, name: str) -> None:
    table = Table(title=f"First rows of {name} (a random tiny model writes gibberish: that's expected)")
    table.add_column("instruction", overflow="fold", max_width=50)
    table.add_column("output", overflow="fold", max_width=60)
    for row in client.preview(name, limit=5)["rows"]:
        table.add_row(row["instruction"][:200], row["output"][:200])
    console.print(table)


def main(config: StackConfig | None = None) -> int:
    """Run the demo; `config` (ports, data root) defaults to `make up`'s."""
    config = config or StackConfig(quiet=True)
    started = time.monotonic()
    with ExitStack() as stack:
        base_url, model, teacher_token = _teacher(stack, config.data_root)
        # The serving target: VLLM_URL for a real setup, else the local vLLM that is also the teacher.
        config.extra_env.setdefault("SYNTHTUNE_VLLM_URL", os.environ.get("VLLM_URL") or base_url.removesuffix("/v1"))
        console.print("[bold]Starting[/] services, control plane and worker…")
        running = stack.enter_context(Stack(config))
        login = _demo_login(running)
        client = stack.enter_context(Client(config.http_url, token=login["token"]))
        try:
            name = generate(client, base_url=base_url, model=model, token=teacher_token)
            show_rows(client, name)
            adapter = fine_tune(client, dataset=name, base_model=BASE_MODEL)
            load_and_compare(client, adapter=adapter, dataset=name)
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
