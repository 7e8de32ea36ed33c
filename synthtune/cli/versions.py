"""synthtune datasets lineage | diff | merge | edit: dataset versions.

Datasets are named "name" or "name@N" (version N of name's family) wherever a command
reads one. Registered on the `datasets` group by synthtune.cli.main.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from synthtune.cli.context import Context

pass_context = click.make_pass_decorator(Context)


def _describe(version: dict[str, Any]) -> str:
    operation = version.get("operation") or {}
    params = ", ".join(f"{k}={v}" for k, v in (operation.get("params") or {}).items())
    return f"{version['name']} (v{version['version']}, {operation.get('op', '?')}{': ' + params if params else ''})"


def _short(row: dict[str, Any]) -> str:
    if "messages" in row:
        user = next((m["content"] for m in row["messages"] if m.get("role") == "user"), "")
        return f"{user!r} → {row['messages'][-1]['content']!r}"
    return f"{row.get('instruction', '')!r} → {row.get('output', '')!r}"


@click.command()
@click.argument("name")
@pass_context
def lineage(ctx: Context, name: str) -> None:
    """Where dataset NAME comes from (root first) and the versions made from it."""
    with ctx.client() as client:
        data = client.dataset_lineage(name)
    lines = [f"  {_describe(a)}" for a in data["ancestors"]]
    lines.append(f"* {_describe(data['dataset'])}  sha256 {data['dataset']['sha256'][:12]}")
    lines += [f"    └ {_describe(c)}" for c in data["children"]]
    if data["inputs"]:
        lines.append("merged from: " + ", ".join(f"{i['name']} (v{i['version']})" for i in data["inputs"]))
    ctx.emit(data, text="\n".join(lines))


@click.command()
@click.argument("old")
@click.argument("new")
@click.option("--examples", default=5, show_default=True, help="Rows shown of each kind (0 to 50).")
@pass_context
def diff(ctx: Context, old: str, new: str, examples: int) -> None:
    """Rows added, removed and changed from dataset OLD to NEW (keyed by instruction)."""
    with ctx.client() as client:
        data = client.dataset_diff(old, new, examples=examples)
    lines = [
        f"{data['old']['name']} (v{data['old']['version']}) → {data['new']['name']} (v{data['new']['version']}): "
        f"{data['added']} added, {data['removed']} removed, {data['changed']} changed, {data['unchanged']} unchanged"
    ]
    lines += [f"+ {_short(row)}" for row in data["examples"]["added"]]
    lines += [f"- {_short(row)}" for row in data["examples"]["removed"]]
    for pair in data["examples"]["changed"]:
        lines += [f"~ {_short(pair['old'])}", f"  {_short(pair['new'])}"]
    ctx.emit(data, text="\n".join(lines))


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--name", help="The new dataset [default: the first source's next version, <family>.v<N>].")
@click.option("--dedupe/--no-dedupe", default=True, show_default=True, help="Drop rows identical to an earlier one.")
@pass_context
def merge(ctx: Context, sources: tuple[str, ...], name: str | None, dedupe: bool) -> None:
    """Merge SOURCES (two or more, in order) into a new version of the first."""
    with ctx.client() as client:
        data = client.merge_datasets(sources, name=name, dedupe=dedupe)
    dropped = data["operation"].get("dropped_duplicates", 0)
    ctx.emit(data, text=f"merged into {data['name']} (v{data['version']} of {data['family']}): {data['rows']} rows, "
                        f"{dropped} duplicate(s) dropped")


@click.command()
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", "output", help="The new dataset [default: <family>.v<N>].")
@pass_context
def edit(ctx: Context, name: str, file: Path, output: str | None) -> None:
    """A new version of dataset NAME with the rows in FILE (JSONL); NAME itself is left as it is."""
    with ctx.client() as client:
        data = client.new_dataset_version(name, file.read_bytes(), name=output)
    ctx.emit(data, text=f"new version {data['name']} (v{data['version']} of {data['family']}, parent "
                        f"{data['parent']}): {data['rows']} rows")


COMMANDS = (lineage, diff, merge, edit)
