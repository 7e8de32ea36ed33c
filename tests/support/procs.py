"""Start real service processes on loopback for tests, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
TEST_GRPC_TOKEN = "test-grpc-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_grpc_serving(address: str, *, timeout_s: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Block until the gRPC health check says SERVING (or raise with a reason)."""
    deadline = time.monotonic() + timeout_s
    last_error = ""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"service at {address} exited with {proc.returncode} before serving")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last_error = exc.code().name
            time.sleep(0.1)
    raise TimeoutError(f"service at {address} not SERVING after {timeout_s}s ({last_error})")


@dataclass
class ServiceProcess:
    address: str
    proc: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_service(module: str, *, listen_var: str, env: dict[str, str], log_path: Path) -> ServiceProcess:
    """Run `python -m module` with `env` on a free loopback port and wait until it serves."""
    address = f"127.0.0.1:{free_port()}"
    full_env = {
        **os.environ,
        "SYNTHTUNE_GRPC_TOKEN": TEST_GRPC_TOKEN,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        **env,
        listen_var: address,
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    service = ServiceProcess(address=address, proc=proc, log_path=log_path)
    try:
        wait_grpc_serving(address, proc=proc)
    except BaseException:
        service.stop()
        raise RuntimeError(f"{module} did not start; log:\n{service.log_text()[-4000:]}")
    return service


@contextmanager
def running_service(module: str, *, listen_var: str, env: dict[str, str], log_path: Path) -> Iterator[ServiceProcess]:
    service = start_service(module, listen_var=listen_var, env=env, log_path=log_path)
    try:
        yield service
    finally:
        service.stop()
