"""Waiting for local processes to serve: used by the stack, the demo and the tests."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    """A loopback port free right now (another process could still take it before you bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_alive(proc: subprocess.Popen | None, name: str) -> None:
    if proc is not None and proc.poll() is not None:
        raise RuntimeError(f"{name} exited with {proc.returncode} while starting")


def wait_grpc_serving(address: str, *, proc: subprocess.Popen | None = None, name: str = "service",
                      timeout_s: float = 60) -> None:
    """Block until the gRPC health check at `address` says SERVING; fail early if `proc` dies."""
    deadline = time.monotonic() + timeout_s
    last_error = ""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            _check_alive(proc, name)
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last_error = exc.code().name
            time.sleep(0.1)
    raise TimeoutError(f"{name} at {address} was not SERVING after {timeout_s:.0f}s ({last_error})")


def wait_http_ok(url: str, *, proc: subprocess.Popen | None = None, name: str = "server",
                 timeout_s: float = 180) -> None:
    """Block until GET `url` answers 200; fail early if `proc` dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_alive(proc, name)
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} at {url} did not answer 200 after {timeout_s:.0f}s")
