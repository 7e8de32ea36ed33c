"""Run the whole stack as local processes: the services, Django, the worker.

Used by `make up` (synthtune.up) and `make demo` (synthtune.demo). Every
process gets the same data root and gRPC token; output lines are prefixed with
the process name. Stopping sends SIGTERM to all, then kills stragglers.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from synthtune.readiness import wait_grpc_serving, wait_http_ok

REPO = Path(__file__).resolve().parent.parent

# (process name, python module, listen variable, address variable the control plane reads, port)
SERVICES = [
    ("datagen", "datagen_svc", "SYNTHTUNE_DATAGEN_LISTEN", "SYNTHTUNE_DATAGEN_ADDR", 50051),
    ("trainer", "trainer_svc", "SYNTHTUNE_TRAINER_LISTEN", "SYNTHTUNE_TRAINER_ADDR", 50052),
    ("serving-proxy", "serving_proxy_svc", "SYNTHTUNE_SERVING_PROXY_LISTEN", "SYNTHTUNE_SERVING_PROXY_ADDR", 50053),
]
# Each process's Prometheus /metrics port (SYNTHTUNE_METRICS_PORT), so they don't collide on one
# machine; the control plane serves its /metrics on the HTTP port. 0 turns one off.
METRICS_PORTS = {"datagen": 9101, "trainer": 9102, "serving-proxy": 9103, "worker": 9104}
# prometheus_client's multi-process folder, and the old lower-case name it still reads.
MULTIPROC_VARS = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


@dataclass
class StackConfig:
    data_root: Path = field(default_factory=lambda: Path(os.environ.get("SYNTHTUNE_DATA_ROOT", "./var")))
    http_port: int = int(os.environ.get("SYNTHTUNE_HTTP_PORT", "8080"))
    grpc_token: str = field(default_factory=lambda: os.environ.get("SYNTHTUNE_GRPC_TOKEN") or secrets.token_urlsafe(24))
    extra_env: dict[str, str] = field(default_factory=dict)
    quiet: bool = False  # demo: keep service logs in files, not on the terminal
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(METRICS_PORTS))

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def metrics_urls(self) -> dict[str, str]:
        """Process name -> its /metrics URL, for the processes that serve one."""
        names = {s[0] for s in implemented_services()} | {"worker"}
        urls = {name: f"http://127.0.0.1:{port}/metrics" for name, port in self.metrics_ports.items()
                if port and name in names}
        return {**urls, "control-plane": f"{self.http_url}/metrics"}


def implemented_services() -> list[tuple[str, str, str, str, int]]:
    """The services that can run: their package has a __main__."""
    return [s for s in SERVICES if importlib.util.find_spec(s[1]) and importlib.util.find_spec(f"{s[1]}.__main__")]


class Stack:
    """Starts processes in order and stops them all, whatever happens."""

    def __init__(self, config: StackConfig):
        self.config = config
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.log_dir = config.data_root / "logs"
        self._commands: dict[str, tuple[list[str], dict[str, str] | None]] = {}  # for restart()

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "SYNTHTUNE_DATA_ROOT": str(self.config.data_root.resolve()),
            "SYNTHTUNE_GRPC_TOKEN": self.config.grpc_token,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "SYNTHTUNE_METRICS_HOST": os.environ.get("SYNTHTUNE_METRICS_HOST", "127.0.0.1"),
            **self.config.extra_env,
        }
        for _, _, listen_var, addr_var, port in implemented_services():
            env.setdefault(listen_var, f"127.0.0.1:{port}")
            env.setdefault(addr_var, env[listen_var])
        # The web process's alone (_web_env): a service or the worker would write its values into
        # the web's folder, which gunicorn_conf clears as it starts, and its /metrics would merge them.
        for name in MULTIPROC_VARS:
            env.pop(name, None)
        return env

    def _web_env(self, env: dict[str, str]) -> dict[str, str]:
        """The control plane's env: PROMETHEUS_MULTIPROC_DIR as given to the stack, if not blank
        (unset, gunicorn_conf makes a fresh folder for several workers)."""
        given = {**os.environ, **self.config.extra_env}.get(MULTIPROC_VARS[0], "").strip()
        return {**env, MULTIPROC_VARS[0]: given} if given else env

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env or self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )
        self.procs.append((name, proc))
        self._commands[name] = (argv, env)
        threading.Thread(target=self._pump, args=(name, proc), daemon=True).start()
        return proc

    def proc(self, name: str) -> subprocess.Popen:
        """The newest process started under `name` (datagen, trainer, serving-proxy, worker, control-plane)."""
        return next(proc for n, proc in reversed(self.procs) if n == name)

    def kill(self, name: str) -> None:
        """SIGKILL one process, as a crash or the OOM killer would: no chance to tidy up."""
        proc = self.proc(name)
        proc.kill()
        proc.wait()

    def restart(self, name: str) -> subprocess.Popen:
        """Start `name` again with its first command line and environment (stopping it first if it is
        still up) and wait until it is ready, as a supervisor would after a crash."""
        old = self.proc(name)
        if old.poll() is None:
            old.send_signal(signal.SIGTERM)
            old.wait(15)
        self.procs.remove((name, old))
        argv, env = self._commands[name]
        proc = self.spawn(name, argv, env)
        listen = {s[0]: s[2] for s in implemented_services()}
        if name in listen:
            wait_grpc_serving((env or self.env())[listen[name]], proc=proc, name=name)
        elif name == "control-plane":
            wait_http_ok(f"{self.config.http_url}/healthz", proc=proc, name=name)
        return proc

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if not self.config.quiet:
                    sys.stdout.write(f"{name:>14} | {line.decode(errors='replace')}")

    def start(self) -> None:
        env = self.env()
        self.config.data_root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "control_plane", "migrate", "--noinput"], cwd=REPO, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        for name, module, listen_var, _, _ in implemented_services():
            self.spawn(name, [sys.executable, "-m", module], self._with_metrics_port(env, name))
            wait_grpc_serving(env[listen_var], proc=self.procs[-1][1], name=name)
        self.spawn("worker", [sys.executable, "-m", "control_plane", "worker"], self._with_metrics_port(env, "worker"))
        self.spawn("control-plane", [
            sys.executable, "-m", "gunicorn", "control_plane.wsgi", "--bind", f"127.0.0.1:{self.config.http_port}",
            # Workers, threads (gthread) and timeout 0 are the config's, as in the image and the chart.
            "--config", "python:control_plane.gunicorn_conf", "--graceful-timeout", "5",
        ], self._web_env(env))
        wait_http_ok(f"{self.config.http_url}/healthz", proc=self.procs[-1][1], name="control-plane")

    def _with_metrics_port(self, env: dict[str, str], name: str) -> dict[str, str]:
        # Set for every process, 0 included: one port inherited from the shell would make them collide.
        return {**env, "SYNTHTUNE_METRICS_PORT": str(self.config.metrics_ports.get(name, 0))}

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
