"""What every command shares: the client, output in table or JSON, exit codes."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from synthtune.client import ApiError, Client

EXIT_USER_ERROR = 2
EXIT_SERVER_ERROR = 3
EXIT_JOB_FAILED = 4
DEFAULT_URL = "http://127.0.0.1:8080"


def config_file() -> Path:
    return Path(os.environ.get("SYNTHTUNE_CONFIG", Path.home() / ".config" / "synthtune" / "config.json"))


def _from_file() -> dict[str, str]:
    path = config_file()
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"cannot read {path}: {exc}") from exc


@dataclass
class Context:
    url: str
    token: str
    as_json: bool
    console: Console

    def client(self) -> Client:
        if not self.token:
            raise click.UsageError(
                "no API token: pass --token, set SYNTHTUNE_API_TOKEN, or write "
                f'{{"url": ..., "token": ...}} to {config_file()} '
                "(make one with: python -m control_plane drf_create_token <user>)"
            )
        return Client(self.url, token=self.token)

    def emit(self, data: Any, *, table: Table | None = None, text: str | None = None) -> None:
        """JSON when --json, else the table or text given (or pretty JSON)."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        elif table is not None:
            self.console.print(table)
        elif text is not None:
            self.console.print(text)
        else:
            self.console.print_json(data=data)


def make_context(url: str | None, token: str | None, as_json: bool) -> Context:
    stored = _from_file()
    return Context(
        url=url or os.environ.get("SYNTHTUNE_API_URL") or stored.get("url") or DEFAULT_URL,
        token=token or os.environ.get("SYNTHTUNE_API_TOKEN") or stored.get("token") or "",
        as_json=as_json,
        # Progress and tables go to stderr under --json, so stdout stays parseable.
        console=Console(stderr=as_json),
    )


def fail(error: ApiError) -> NoReturn:
    code = EXIT_USER_ERROR if 400 <= error.status < 500 else EXIT_SERVER_ERROR
    click.echo(f"error: {error.message}" + (f" ({error.code})" if error.code else ""), err=True)
    if field := (error.extra or {}).get("field"):
        click.echo(f"  field: {field}", err=True)
    sys.exit(code)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    result = Table(title=title)
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(*["" if cell is None else str(cell) for cell in row])
    return result
