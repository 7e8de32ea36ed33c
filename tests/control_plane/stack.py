"""The control plane as real processes: migrate, a staff user, gunicorn and the worker.

    with ControlPlaneStack(data_root, datagen_addr=..., log_dir=...) as stack:
        stack.url, stack.username, stack.password

It uses its own SQLite file under `data_root` (not pytest-django's database),
exactly as `make up` would run it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

from tests.support.procs import REPO, TEST_GRPC_TOKEN, free_port

STARTUP_TIMEOUT_S = 30.0


class ControlPlaneStack:
    username = "admin"
    password = "stack-admin-password-4711"

    def __init__(self, data_root: Path, *, datagen_addr: str, log_dir: Path):
        self.data_root = data_root
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SYNTHTUNE_DATA_ROOT": str(data_root),
            "SYNTHTUNE_GRPC_TOKEN": TEST_GRPC_TOKEN,
            "SYNTHTUNE_DATAGEN_ADDR": datagen_addr,
            "SYNTHTUNE_WORKER_POLL_S": "0.2",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SUPERUSER_PASSWORD": self.password,
        }
        self.env.pop("DATABASE_URL", None)
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self._procs: list[subprocess.Popen] = []

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "control_plane", *args],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self._procs.append(proc)
        return proc

    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> Self:
        self.manage("migrate", "--noinput")
        self.manage(
            "createsuperuser", "--noinput", "--username", self.username, "--email", "admin@example.com"
        )
        web = self._spawn("web", [
            sys.executable, "-m", "gunicorn", "control_plane.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}", "--worker-class", "gthread", "--threads", "8",
            "--graceful-timeout", "5",
            "--no-control-socket",  # one fixed path per user: parallel stacks would fight over it
        ])  # fmt: skip
        self._spawn("worker", [sys.executable, "-m", "control_plane", "worker"])
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if web.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {web.returncode}:\n{self.log_text('web')[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/admin/login/", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise TimeoutError(f"control plane not answering after {STARTUP_TIMEOUT_S}s:\n{self.log_text('web')}")

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
