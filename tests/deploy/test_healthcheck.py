"""deploy/docker/healthcheck.py, the images' HEALTHCHECK, against real servers."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.conftest import DOCKER
from tests.support.procs import free_port, running_service

SCRIPT = DOCKER / "healthcheck.py"


def run_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--timeout", "2", *args], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **(env or {})})


def _module():
    spec = importlib.util.spec_from_file_location("healthcheck", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("listen, expected", [
    ("[::]:50051", "127.0.0.1:50051"), ("0.0.0.0:8", "127.0.0.1:8"), ("10.1.2.3:50052", "10.1.2.3:50052"),
])
def test_wildcard_listen_addresses_are_probed_on_loopback(listen, expected):
    assert _module().probe_address(listen) == expected


@pytest.fixture
def health_server():
    """A gRPC server with the standard health service; the test sets its status."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(None)


def test_grpc_serving_passes_and_not_serving_fails(health_server):
    servicer, port = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert run_check("grpc", "--address", f"127.0.0.1:{port}").returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # what SIGTERM does first
    result = run_check("grpc", "--address", f"127.0.0.1:{port}")
    assert result.returncode == 1 and "NOT_SERVING" in result.stderr


def test_grpc_reads_the_listen_variable_the_service_reads(health_server):
    servicer, port = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert run_check("grpc", "--listen-env", "X_LISTEN", env={"X_LISTEN": f"[::]:{port}"}).returncode == 0
    unset = run_check("grpc", "--listen-env", "X_UNSET_LISTEN")
    assert unset.returncode == 1 and "X_UNSET_LISTEN" in unset.stderr


def test_grpc_nothing_listening_fails():
    result = run_check("grpc", "--address", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "UNAVAILABLE" in result.stderr


def test_the_real_datagen_service_passes(tmp_path):
    # What the datagen image runs, with the image's wildcard listen address style.
    with running_service("datagen_svc", listen_var="SYNTHTUNE_DATAGEN_LISTEN",
                         env={"SYNTHTUNE_DATA_ROOT": str(tmp_path / "data")},
                         log_path=tmp_path / "datagen.log") as service:
        port = service.address.rsplit(":", 1)[1]
        assert run_check("grpc", "--listen-env", "L", env={"L": f"0.0.0.0:{port}"}).returncode == 0


@pytest.fixture
def http_server():
    seen_hosts = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen_hosts.append(self.headers["Host"])
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen_hosts
    server.shutdown()
    server.server_close()


def test_http_2xx_passes_and_anything_else_fails(http_server):
    url, seen_hosts = http_server
    assert run_check("http", f"{url}/healthz").returncode == 0
    result = run_check("http", f"{url}/down")
    assert result.returncode == 1 and "503" in result.stderr
    # Django's ALLOWED_HOSTS always has localhost; the probe must not send a pod IP.
    assert seen_hosts == ["localhost", "localhost"]
    assert run_check("http", f"http://127.0.0.1:{free_port()}/healthz").returncode == 1
