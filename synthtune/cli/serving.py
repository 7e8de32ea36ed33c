"""synthtune adapters load | unload, and synthtune compare one | batch.

vLLM's own API key, when it has one, comes from --vllm-token or SYNTHTUNE_VLLM_TOKEN; it is
sent to the control plane for this call only and never printed. The same holds for the batch
judge's token, read from the environment variable --judge-token-env names (JUDGE_TOKEN).
"""

from __future__ import annotations

import os
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from synthtune.cli.context import Context, table
from synthtune.cli.models import adapters

pass_context = click.make_pass_decorator(Context)
JUDGE_TOKEN_VAR = "JUDGE_TOKEN"

vllm_token_option = click.option(
    "--vllm-token", envvar="SYNTHTUNE_VLLM_TOKEN", default="", show_default=False,
    help="vLLM's API key, if it has one [env: SYNTHTUNE_VLLM_TOKEN]; never stored.",
)


def _compare_options(command):
    """What both compare commands take: which loaded version, where, sampling (the same for both
    sides; unset: greedy, the server's max tokens) and vLLM's key."""
    for option in reversed([
        click.option("--served-name", default="", help="A loaded version's served name [default: the newest]."),
        click.option("--target", default="", help="vLLM base URL [default: where the adapter is loaded]."),
        click.option("--max-tokens", type=click.IntRange(1, 4096), help="Tokens per answer."),
        click.option("--temperature", type=click.FloatRange(0, 2), help="[default: 0, greedy]"),
        click.option("--top-p", type=click.FloatRange(0, 1, min_open=True)),
        click.option("--seed", type=click.IntRange(0, 2**31 - 1)),
        vllm_token_option,
    ]):
        command = option(command)
    return command


def _sampling(max_tokens, temperature, top_p, seed) -> dict[str, Any]:
    given = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}
    return {k: v for k, v in given.items() if v is not None}


# --- adapters load | unload -------------------------------------------------------------------


@adapters.command()
@click.argument("name")
@click.option("--target", "targets", multiple=True, help="vLLM base URL (repeatable) [default: every replica].")
@vllm_token_option
@pass_context
def load(ctx: Context, name: str, targets: tuple[str, ...], vllm_token: str) -> None:
    """Hot-load adapter NAME into vLLM; prints its served name and a result per replica."""
    with ctx.client() as client:
        result = client.load_adapter(name, targets=targets, token=vllm_token)
    rows = [[r["target"], "ok" if r["ok"] else f"failed ({r['code']})",
             "already loaded" if r["already_loaded"] else r["message"]] for r in result["replicas"]]
    ctx.emit(result, table=table(f"Loaded {name} as {result['served_name']}", ["vLLM", "result", "note"], rows))


@adapters.command()
@click.argument("name")
@vllm_token_option
@pass_context
def unload(ctx: Context, name: str, vllm_token: str) -> None:
    """Unload every loaded deployment of adapter NAME (its files stay)."""
    with ctx.client() as client:
        result = client.unload_adapter(name, token=vllm_token)
    rows = [[d["target"], d["served_name"], d["state"]] for d in result["deployments"]]
    ctx.emit(result, table=table(f"Unloaded {name}", ["vLLM", "served name", "state"], rows))


# --- compare one | batch ----------------------------------------------------------------------


@click.group()
def compare() -> None:
    """Base model vs fine-tuned adapter, side by side (the adapter must be loaded)."""


@compare.command()
@click.argument("adapter")
@click.argument("prompt")
@click.option("--system", "system_prompt", default="", help="System prompt (chat-format adapters).")
@_compare_options
@pass_context
def one(ctx: Context, adapter: str, prompt: str, system_prompt: str, served_name: str, target: str,
        vllm_token: str, **sampling) -> None:
    """Both models answer PROMPT with identical sampling, in ADAPTER's recorded prompt format."""
    with ctx.client() as client:
        result = client.compare(adapter=adapter, prompt=prompt, sampling=_sampling(**sampling),
                                system_prompt=system_prompt, served_name=served_name, target=target,
                                token=vllm_token)
    ctx.emit(result, table=_one_table(result))


def _one_table(result: dict[str, Any]) -> Table:
    sides = [("base", result["base"]), (f"fine-tuned ({result['served_name']})", result["adapter"])]
    view = Table(title=f"Compare ({result['prompt_format']} format)", show_lines=True)
    view.add_column("model")
    view.add_column("output", overflow="fold", ratio=1)
    view.add_column("tokens", justify="right")
    view.add_column("ms", justify="right")
    view.add_column("finish")
    for label, side in sides:
        view.add_row(label, side["text"], str(side["completion_tokens"]), f"{side['latency_ms']:.0f}",
                     side["finish_reason"])
    return view


def _judge_body(url: str | None, model: str | None, token_env: str, mode: str, rubric: str | None) -> dict | None:
    if not url and not model:
        return None
    if not url or not model:
        raise click.UsageError("--judge-url and --judge-model go together.")
    token = os.environ.get(token_env, "")
    if not token and token_env != JUDGE_TOKEN_VAR:
        raise click.UsageError(f"--judge-token-env {token_env}: that environment variable is not set.")
    judge = {"base_url": url, "model": model, "mode": mode}
    if rubric:
        judge["rubric"] = rubric
    if token:
        judge["token"] = token
    return judge


@compare.command()
@click.argument("adapter")
@click.option("--dataset", default="", help="A ready dataset [default: the adapter's held-out rows].")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Rows to compare.")
@click.option("--judge-url", help="An LLM judge (OpenAI-compatible, e.g. http://host:8000/v1): which answer is "
              "better, asked in both orders.")
@click.option("--judge-model", help="The judge's model name.")
@click.option("--judge-token-env", metavar="VAR", default=JUDGE_TOKEN_VAR, show_default=True,
              help="Environment variable holding the judge's token (never stored).")
@click.option("--judge-mode", type=click.Choice(["pairwise", "single", "both"]), default="pairwise",
              show_default=True, help="single: a 1-5 score per side against the reference.")
@click.option("--judge-rubric", help="What 'better' means, in words the judge reads.")
@_compare_options
@pass_context
def batch(ctx: Context, adapter: str, dataset: str, limit: int, judge_url: str | None, judge_model: str | None,
          judge_token_env: str, judge_mode: str, judge_rubric: str | None, served_name: str, target: str,
          vllm_token: str, **sampling) -> None:
    """Compare over held-out rows with a progress bar; then per-row outputs and a summary
    (exact match, chrF against the reference, latency p50/p95 per side), and with a judge
    its verdicts per row and the adapter's win rate."""
    judge = _judge_body(judge_url, judge_model, judge_token_env, judge_mode, judge_rubric)
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    comparison_id = None
    extra = {"judge": judge} if judge else {}
    with ctx.client() as client, Progress(
        TextColumn("[bold]compare[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=ctx.console,
    ) as bar:
        task = bar.add_task("", total=limit)
        events = client.stream_compare_batch(adapter=adapter, limit=limit, dataset=dataset,
                                             sampling=_sampling(**sampling), served_name=served_name,
                                             target=target, token=vllm_token, **extra)
        for event in events:
            if event.event == "row":
                rows.append(event.data)
                bar.advance(task)
            elif event.event == "summary":
                summary = event.data
                bar.update(task, total=summary["rows"], completed=summary["rows"])
            elif event.event == "comparison":
                comparison_id = event.data["id"]
    result = {"comparison_id": comparison_id, "adapter_name": adapter, "rows": rows, "summary": summary}
    if ctx.as_json:
        ctx.emit(result)
        return
    ctx.console.print(_rows_table(rows))
    ctx.console.print(_summary_table(summary))
    if summary.get("judge"):
        ctx.console.print(_judge_headline(summary["judge"]))
        ctx.console.print(_judge_table(summary["judge"]))


def _judge_text(judge: dict[str, Any] | None) -> str:
    """A row's judge column: the outcome, then each order's verdict and reason (and single scores)."""
    if not judge:
        return ""
    lines = []
    if judge["outcome"]:
        lines.append(judge["outcome"] + (" (orders disagree)" if judge["inconsistent"] else ""))
    if judge["reason"] and not judge["verdicts"]:  # else each verdict says why itself
        lines.append(judge["reason"])
    for verdict in judge["verdicts"]:
        said = f"{verdict['winner']}: {verdict['reason']}" if verdict["winner"] else f"no verdict: {verdict['error']}"
        lines.append(f"{verdict['first']} first → {said}")
    if judge.get("base_score"):
        score = lambda side: (judge.get(side) or {}).get("score") or "-"  # noqa: E731
        lines.append(f"scores: base {score('base_score')}, fine-tuned {score('adapter_score')}")
    return "\n".join(lines)


def _judge_headline(judge: dict[str, Any]) -> str:
    judged = judge["wins"] + judge["ties"] + judge["losses"]
    if judge["mode"] == "single":
        return (f"Judge {judge['model']} (single): mean score base {judge['base_score_mean']:.2f}, "
                f"fine-tuned {judge['adapter_score_mean']:.2f}")
    return (f"Judge {judge['model']} ({judge['mode']}): fine-tuned win rate {judge['win_rate']:.0%} "
            f"[95% CI {judge['win_rate_low']:.0%}-{judge['win_rate_high']:.0%}] over {judged} judged rows")


def _judge_table(judge: dict[str, Any]) -> Table:
    title = "Verdicts (both orders)"
    rows = [["wins", judge["wins"], f"{judge['win_rate']:.0%}"], ["ties", judge["ties"], f"{judge['tie_rate']:.0%}"],
            ["losses", judge["losses"], f"{judge['loss_rate']:.0%}"], ["no verdict", judge["no_verdict"], ""],
            ["position-inconsistent", judge["inconsistent"], ""]]
    if judge["base_scored"] or judge["adapter_scored"]:
        rows.append(["mean score (base / fine-tuned)", "", f"{judge['base_score_mean']:.2f} / "
                                                           f"{judge['adapter_score_mean']:.2f}"])
    if judge["error"]:
        rows.append(["error", "", judge["error"]])
    return table(title, ["", "rows", "rate"], [[str(c) for c in row] for row in rows])


def _rows_table(rows: list[dict[str, Any]]) -> Table:
    view = Table(title="Rows", show_lines=True)
    judged = any(row.get("judge") for row in rows)
    for column in ("#", "prompt", "reference", "base", "fine-tuned", *(("judge",) if judged else ())):
        view.add_column(column, overflow="fold")
    for row in rows:
        mark = lambda exact: " ✓" if exact else ""
        cells = [str(row["index"]), row["prompt"], row["reference"], row["base"]["text"] + mark(row["base_exact"]),
                 row["adapter"]["text"] + mark(row["adapter_exact"]) if not row["error"] else row["error"]]
        view.add_row(*cells, *((_judge_text(row.get("judge")),) if judged else ()))
    return view


def _summary_table(summary: dict[str, Any]) -> Table:
    rows = [
        [label, f"{side['exact_match_rate']:.0%}", f"{side['chrf']:.1f}", f"{side['latency_p50_ms']:.0f}",
         f"{side['latency_p95_ms']:.0f}", f"{side['stop_rate']:.0%}"]
        for label, side in (("base", summary["base"]), ("fine-tuned", summary["adapter"]))
    ]
    title = f"Summary: {summary['rows']} rows ({summary['failed_rows']} failed), {summary['prompt_format']} format"
    return table(title, ["model", "exact match", "chrF", "p50 ms", "p95 ms", "stopped"], rows)
