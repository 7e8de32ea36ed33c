"""`make up`'s supervisor starts every implemented service, Django and the worker, and stops them all."""

import urllib.request

from synthtune.stack import METRICS_PORTS, Stack, StackConfig, implemented_services, wait_grpc_serving
from tests.support.procs import free_port


def test_stack_starts_everything_and_stops_cleanly(tmp_path):
    services = implemented_services()
    assert "datagen" in [name for name, *_ in services]
    ports = {listen_var: f"127.0.0.1:{free_port()}" for _, _, listen_var, _, _ in services}
    config = StackConfig(data_root=tmp_path / "var", http_port=free_port(), extra_env=ports, quiet=True,
                         metrics_ports={name: free_port() for name in METRICS_PORTS})  # `make up` may be running
    with Stack(config) as stack:
        names = [name for name, _ in stack.procs]
        assert names == [*[name for name, *_ in services], "worker", "control-plane"]
        for address in ports.values():
            wait_grpc_serving(address, timeout_s=5)
        with urllib.request.urlopen(f"{config.http_url}/healthz", timeout=5) as reply:
            assert reply.status == 200
        procs = [proc for _, proc in stack.procs]
    assert all(proc.poll() is not None for proc in procs)
    assert all(proc.returncode in (0, -15) for proc in procs), [p.returncode for p in procs]
    assert (tmp_path / "var" / "logs" / "datagen.log").stat().st_size > 0
