"""The whole local stack (synthtune.stack, as `make up` runs it) on free ports, with a login."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from synthtune.readiness import free_port
from synthtune.stack import METRICS_PORTS, REPO, Stack, StackConfig, implemented_services
from tests.support.postgres import own_database
from tests.support.procs import TEST_GRPC_TOKEN


@dataclass
class RunningStack:
    stack: Stack
    url: str
    username: str
    password: str
    token: str

    @property
    def metrics_urls(self) -> dict[str, str]:
        """Process name (datagen, trainer, serving-proxy, worker, control-plane) -> its /metrics URL."""
        return self.stack.config.metrics_urls()

    def log_text(self, name: str) -> str:
        path = self.stack.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def running_stack(data_root: Path, **extra_env: str) -> Iterator[RunningStack]:
    ports = {listen_var: f"127.0.0.1:{free_port()}" for _, _, listen_var, _, _ in implemented_services()}
    # On PostgreSQL each stack gets a database of its own (on SQLite, a file in its data root).
    with own_database() as db_env:
        config = StackConfig(
            data_root=data_root, http_port=free_port(), grpc_token=TEST_GRPC_TOKEN, quiet=True,
            extra_env={"SYNTHTUNE_WORKER_POLL_S": "0.2", **ports, **db_env, **extra_env},
            metrics_ports={name: free_port() for name in METRICS_PORTS},
        )
        with Stack(config) as stack:
            login = json.loads(subprocess.run(
                [sys.executable, "-m", "control_plane", "demo_user", "--username", "admin"],
                cwd=REPO, env=stack.env(), check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1])
            yield RunningStack(stack, config.http_url, login["username"], login["password"], login["token"])
