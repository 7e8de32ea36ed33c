"""synthtune datasets generate | list | show | upload | export"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from synthtune.cli.context import Context, table
from synthtune.cli.progress import exit_for, watch_generation

pass_context = click.make_pass_decorator(Context)


@click.group("datasets")
def group() -> None:
    """Synthetic and uploaded instruction datasets."""


@group.command("list")
@click.option("--status", help="ready, generating, failed, cancelled, ...")
@click.option("--search", help="Part of the name.")
@pass_context
def list_(ctx: Context, status: str | None, search: str | None) -> None:
    """List datasets, newest first."""
    params = {k: v for k, v in {"status": status, "search": search}.items() if v}
    with ctx.client() as client:
        data = client.request("GET", "/api/v1/datasets/", params=params)["results"]
    rows = [[d["name"], d["status"], d["rows"], d["format"], d["source"], d["size_bytes"], d["created_at"][:19]] for d in data]
    ctx.emit(data, table=table("Datasets", ["name", "status", "rows", "format", "source", "bytes", "created"], rows))


@group.command()
@click.argument("name")
@click.option("--rows", "limit", default=5, show_default=True, help="How many rows to preview.")
@pass_context
def show(ctx: Context, name: str, limit: int) -> None:
    """One dataset's record and its first rows."""
    with ctx.client() as client:
        data = {**client.dataset(name), "preview": client.preview(name, limit=limit)["rows"]}
    ctx.emit(data)


@group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Dataset name [default: the file name without .jsonl].")
@pass_context
def upload(ctx: Context, file: Path, name: str | None) -> None:
    """Upload a JSONL file ({"instruction","output"} or {"messages"} rows); bad lines are listed."""
    with ctx.client() as client, file.open("rb") as handle:
        data = client.request("POST", "/api/v1/datasets/", files={"file": (file.name, handle)},
                              data={"name": name} if name else {})
    ctx.emit(data, text=f"uploaded {data['name']}: {data['rows']} rows ({data['format']})")


@group.command()
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["instruction", "chat"]), help="Convert rows [default: as stored].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write [default: stdout].")
@pass_context
def export(ctx: Context, name: str, fmt: str | None, output: Path | None) -> None:
    """Download a dataset as JSONL, optionally converted to the other format."""
    with ctx.client() as client:
        text = client.request("GET", f"/api/v1/datasets/{name}/download/", params={"format": fmt} if fmt else {})
    if output:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text)


@group.command()
@click.option("--name", required=True, help="Dataset name: letters, digits, '.', '-', '_'.")
@click.option("--base-url", required=True, help="OpenAI-compatible API, e.g. http://host:8000/v1.")
@click.option("--model", required=True, help="Model name at that endpoint.")
@click.option("--mode", type=click.Choice(["fixed", "self_instruct", "from_instructions"]), default="self_instruct",
              show_default=True)
@click.option("--rows", "num_rows", type=int, help="Rows to keep.")
@click.option("--topic", help="self_instruct: what the instructions are about.")
@click.option("--seed-example", "seed_examples", multiple=True, help="self_instruct: an example (repeatable).")
@click.option("--prompt-template", help="fixed: the instruction of every row.")
@click.option("--instruction", "instructions", multiple=True, help="from_instructions: one (repeatable).")
@click.option("--instructions-file", type=click.File(), help="from_instructions: one per line.")
@click.option("--system-prompt")
@click.option("--concurrency", type=int)
@click.option("--rpm", "requests_per_minute", type=float, help="Requests per minute (0: unlimited).")
@click.option("--temperature", type=float)
@click.option("--max-tokens", type=int)
@click.option("--skip-tls-verify", is_flag=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the job with a progress bar.")
@pass_context
def generate(ctx: Context, wait: bool, instructions_file, **fields) -> None:
    """Generate a dataset from an endpoint. Its token comes from TEACHER_TOKEN and is never stored."""
    body = {k: v for k, v in fields.items() if v not in (None, (), False)}
    body["instructions"] = list(body.get("instructions", ())) + (
        [line.strip() for line in instructions_file if line.strip()] if instructions_file else [])
    body["seed_examples"] = list(body.get("seed_examples", ()))
    body = {k: v for k, v in body.items() if v != []}
    if token := os.environ.get("TEACHER_TOKEN"):
        body["token"] = token
    with ctx.client() as client:
        job = client.generate_dataset(**body)
        if not wait:
            ctx.emit(job, text=f"started generation job {job['job_id']} for dataset {job['dataset']}")
            return
        state = watch_generation(ctx.console, client.follow_generation(job["job_id"]), total=job["target_rows"])
        final = client.generation_job(job["job_id"])
    ctx.emit(final, text=f"{final['state']}: {final['kept']} kept, {final['dropped']} dropped, "
                         f"{final['failed']} failed → dataset {final['dataset']}")
    exit_for(state)
