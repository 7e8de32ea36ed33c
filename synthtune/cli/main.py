"""Command tree: synthtune [--json] datasets|runs|adapters|compare ..."""

from __future__ import annotations

import sys

import click

from synthtune.cli import datasets, models, serving, versions
from synthtune.cli.context import EXIT_SERVER_ERROR, fail, make_context
from synthtune.client import ApiError


class _Root(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ApiError as error:
            fail(error)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as error:  # e.g. a file that can't be read or written
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_SERVER_ERROR if isinstance(error, ConnectionError) else 2)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="SYNTHTUNE_API_URL", help="Control plane URL [default: http://127.0.0.1:8080].")
@click.option("--token", envvar="SYNTHTUNE_API_TOKEN", help="API token (prefer the environment variable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (progress goes to stderr).")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, as_json: bool) -> None:
    """Generate datasets, fine-tune LoRA adapters, load them into vLLM and compare.

    \b
    Exit codes: 0 success, 2 user error (bad arguments or a 4xx answer),
    3 server or upstream error (5xx or unreachable), 4 the watched job or run
    failed or was cancelled.
    """
    ctx.obj = make_context(url, token, as_json)


cli.add_command(datasets.group)
for command in versions.COMMANDS:  # datasets lineage | diff | merge | edit
    datasets.group.add_command(command)
cli.add_command(models.runs)
cli.add_command(models.adapters)  # with load/unload from synthtune.cli.serving
cli.add_command(serving.compare)


def main() -> None:
    cli(prog_name="synthtune")
