"""synthtune datasets generate | curate | resume | list | show | upload | export"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from synthtune.cli.context import Context, table
from synthtune.cli.progress import exit_for, watch_generation

pass_context = click.make_pass_decorator(Context)
TEACHER_TOKEN_VAR = "TEACHER_TOKEN"
JUDGE_TOKEN_VAR = "JUDGE_TOKEN"
_FILTER_OPTIONS = ("near_dup", "near_dup_threshold", "decontam", "decontam_adapter", "judge_url", "judge_model",
                   "judge_token_env", "judge_min_score")


def filter_options(command: Callable) -> Callable:
    """The quality-filter options shared by generate and curate (see filters_body)."""
    options = [
        click.option("--near-dup/--no-near-dup", default=False, help="Drop near-duplicate instructions."),
        click.option("--near-dup-threshold", type=float, help="Similarity in (0.5, 1] [default: 0.8]; implies "
                     "--near-dup."),
        click.option("--decontam", multiple=True, metavar="DATASET",
                     help="Drop rows overlapping this evaluation dataset (repeatable)."),
        click.option("--decontam-adapter", multiple=True, metavar="ADAPTER",
                     help="...or this adapter's held-out eval split (repeatable)."),
        click.option("--judge-url", help="An LLM judge (OpenAI-compatible) scoring every row 1 to 5."),
        click.option("--judge-model", help="The judge's model name."),
        click.option("--judge-token-env", metavar="VAR", default=JUDGE_TOKEN_VAR, show_default=True,
                     help="Environment variable holding the judge's token (never stored)."),
        click.option("--judge-min-score", type=float, help="Drop rows whose mean score is below this [default: 3]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _token_from(var: str, *, default_var: str, option: str) -> str:
    """The token in environment variable `var`; naming a variable that is unset is a user error."""
    token = os.environ.get(var, "")
    if not token and var != default_var:
        raise click.UsageError(f"{option} {var}: that environment variable is not set.")
    return token


def filters_body(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The API's `filters` object from the filter options (popped from `fields`), and the judge's token."""
    opts = {name: fields.pop(name) for name in _FILTER_OPTIONS}
    filters: dict[str, Any] = {}
    if opts["near_dup"] or opts["near_dup_threshold"] is not None:
        filters["near_dup"] = {k: v for k, v in {"threshold": opts["near_dup_threshold"]}.items() if v is not None}
    if opts["decontam"] or opts["decontam_adapter"]:
        filters["decontam"] = {"eval_datasets": list(opts["decontam"]), "eval_adapters": list(opts["decontam_adapter"])}
    token = _token_from(opts["judge_token_env"], default_var=JUDGE_TOKEN_VAR, option="--judge-token-env")
    if opts["judge_url"] or opts["judge_model"] or opts["judge_min_score"] is not None:
        judge = {"base_url": opts["judge_url"] or "", "model": opts["judge_model"] or ""}
        if opts["judge_min_score"] is not None:
            judge["min_score"] = opts["judge_min_score"]
        if token:
            judge["token"] = token
        filters["judge"] = judge
    return filters, token


def _watch(ctx: Context, client, job: dict, *, label: str = "generate") -> None:
    """Follow the job with a progress bar, then print its outcome (with the filters' report)."""
    state = watch_generation(ctx.console, client.follow_generation(job["job_id"]), total=job["target_rows"],
                             label=label)
    final = client.generation_job(job["job_id"])
    report = final.get("report") or {}
    dropped_by = ", ".join(f"{check} {rows}" for check, rows in sorted((report.get("dropped_by") or {}).items()))
    judged = f"; judged {report['judged']}, judge failures {report['judge_failures']}" if report.get("judged") or \
        report.get("judge_failures") else ""
    ctx.emit(final, text=f"{final['state']}: {final['kept']} kept, {final['dropped']} dropped"
                         f"{f' ({dropped_by})' if dropped_by else ''}, {final['failed']} failed{judged} "
                         f"→ dataset {final['dataset']}")
    exit_for(state)


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
@click.option("--mode", type=click.Choice(["fixed", "self_instruct", "from_instructions", "evol_instruct", "topic_tree"]),
              default="self_instruct", show_default=True)
@click.option("--rows", "num_rows", type=int, help="Rows to keep.")
@click.option("--topic", help="self_instruct, evol_instruct, topic_tree: what the instructions are about.")
@click.option("--seed-example", "seed_examples", multiple=True,
              help="self_instruct, evol_instruct: an example (repeatable).")
@click.option("--evol-rounds", type=int, help="evol_instruct: evolutions per instruction, 1 to 5 [default: 2].")
@click.option("--breadth-share", type=float, help="evol_instruct: share of evolutions in breadth, 0 to 1 "
              "[default: 0.25].")
@click.option("--tree-depth", type=int, help="topic_tree: levels of subtopics, 1 to 4 [default: 2].")
@click.option("--tree-breadth", type=int, help="topic_tree: subtopics per node, 1 to 10 [default: 3].")
@click.option("--prompt-template", help="fixed: the instruction of every row.")
@click.option("--instruction", "instructions", multiple=True, help="from_instructions: one (repeatable).")
@click.option("--instructions-file", type=click.File(), help="from_instructions: one per line.")
@click.option("--system-prompt")
@click.option("--concurrency", type=int)
@click.option("--rpm", "requests_per_minute", type=float, help="Requests per minute (0: unlimited).")
@click.option("--temperature", type=float)
@click.option("--max-tokens", type=int)
@click.option("--skip-tls-verify", is_flag=True)
@filter_options
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the job with a progress bar.")
@pass_context
def generate(ctx: Context, wait: bool, instructions_file, **fields) -> None:
    """Generate a dataset from an endpoint. Its token comes from TEACHER_TOKEN (the judge's from
    JUDGE_TOKEN) and is never stored."""
    filters, _ = filters_body(fields)
    strategy = {
        "evol_instruct": {"rounds": fields.pop("evol_rounds"), "breadth_share": fields.pop("breadth_share")},
        "topic_tree": {"depth": fields.pop("tree_depth"), "breadth": fields.pop("tree_breadth")},
    }
    body = {k: v for k, v in fields.items() if v not in (None, (), False)}
    for name, settings in strategy.items():
        if settings := {k: v for k, v in settings.items() if v is not None}:
            body[name] = settings
    if filters:
        body["filters"] = filters
    body["instructions"] = list(body.get("instructions", ())) + (
        [line.strip() for line in instructions_file if line.strip()] if instructions_file else [])
    body["seed_examples"] = list(body.get("seed_examples", ()))
    body = {k: v for k, v in body.items() if v != []}
    if token := os.environ.get(TEACHER_TOKEN_VAR):
        body["token"] = token
    with ctx.client() as client:
        job = client.generate_dataset(**body)
        if not wait:
            ctx.emit(job, text=f"started generation job {job['job_id']} for dataset {job['dataset']}")
            return
        _watch(ctx, client, job)


@group.command()
@click.argument("name")
@click.option("--name", "output", help="The new dataset [default: NAME's next version, <family>.v<N>].")
@click.option("--rows", "num_rows", type=int, help="Curate only the first rows [default: every row].")
@filter_options
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the job with a progress bar.")
@pass_context
def curate(ctx: Context, name: str, output: str | None, num_rows: int | None, wait: bool, **fields) -> None:
    """Filter dataset NAME into a new version of it: no teacher, just the checks. Exact duplicates
    and empty outputs are always dropped; the options add the others."""
    filters, _ = filters_body(fields)
    body: dict[str, Any] = {"filters": filters}
    if output:
        body["name"] = output
    if num_rows is not None:
        body["num_rows"] = num_rows
    with ctx.client() as client:
        job = client.curate_dataset(name, **body)
        if not wait:
            ctx.emit(job, text=f"started curate job {job['job_id']}: {name} → dataset {job['dataset']}")
            return
        _watch(ctx, client, job, label="curate")


@group.command()
@click.argument("job_id")
@click.option("--judge-token-env", metavar="VAR", default=JUDGE_TOKEN_VAR, show_default=True,
              help="Environment variable holding the judge's token, when the job has a judge.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the job with a progress bar.")
@pass_context
def resume(ctx: Context, job_id: str, judge_token_env: str, wait: bool) -> None:
    """Continue a cancelled or failed generation job, keeping its rows. The tokens were never
    stored, so they are read again: the teacher's from TEACHER_TOKEN, the judge's from JUDGE_TOKEN."""
    judge_token = _token_from(judge_token_env, default_var=JUDGE_TOKEN_VAR, option="--judge-token-env")
    with ctx.client() as client:
        job = client.resume_generation(job_id, token=os.environ.get(TEACHER_TOKEN_VAR, ""), judge_token=judge_token)
        if not wait:
            ctx.emit(job, text=f"resumed generation job {job['job_id']} ({job['state']})")
            return
        _watch(ctx, client, job)
