"""Start real service processes on loopback for tests, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from synthtune.readiness import free_port, wait_grpc_serving

REPO = Path(__file__).resolve().parents[2]
TEST_GRPC_TOKEN = "test-grpc-token-0123456789abcdef"
# A fresh trainer's first StartRun imports torch and transformers to validate the run: ~10 s alone
# here, but past 120 s once in a fresh-clone `make test` (the resume test, beside the demo on the
# vLLM side; this VM also pages out page cache idle for a minute, so imports read from disk again).
# A bound on a hang, not a speed check.
START_RUN_TIMEOUT_S = 300


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
        wait_grpc_serving(address, proc=proc, name=module, timeout_s=30)
    except BaseException as exc:
        service.stop()
        raise RuntimeError(f"{module} did not start; log:\n{service.log_text()[-4000:]}") from exc
    return service


@contextmanager
def running_service(module: str, *, listen_var: str, env: dict[str, str], log_path: Path) -> Iterator[ServiceProcess]:
    service = start_service(module, listen_var=listen_var, env=env, log_path=log_path)
    try:
        yield service
    finally:
        service.stop()
