"""Run a real vLLM CPU server (from .venv-vllm) for tests and the demo, and make sure it dies with them.

The recipe is the one in DESIGN.md ("Real vLLM on this machine"). vLLM spawns
child processes (the engine core), so the server runs in its own process group
and is always stopped as a group. Three guards keep it from outliving the test
session: `stop()` / the context manager, an atexit hook, and PR_SET_PDEATHSIG,
which makes the kernel SIGTERM the server if the pytest process dies.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from synthtune.readiness import free_port

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0

_live: set[VllmServer] = set()



class VllmServer:
    """A real `python -m vllm.entrypoints.openai.api_server` on 127.0.0.1.

    The port is fixed at construction, so `url` is known before `start()` and
    `restart()` comes back on the same address. Use as a context manager, or call
    `start()` / `stop()`; both are idempotent.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        served_name: str,
        log_path: Path,
        runtime_lora: bool = True,
        max_lora_rank: int = 8,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.model = served_name
        self.log_path = Path(log_path)
        self.runtime_lora = runtime_lora
        self.max_lora_rank = max_lora_rank
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None  # seconds the last start() took to become healthy

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (what an OpenAI client calls `base_url`)."""
        return f"{self.url}/v1"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"VllmServer({self.model!r} at {self.url}, running={self.running})"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        return [
            str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.model,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--enable-lora", "--max-lora-rank", str(self.max_lora_rank), "--max-loras", "2",
            "--max-model-len", "512", "--dtype", "float32",
            "--kv-cache-memory-bytes", str(256 * 1024 * 1024),
            # >1 batches base and LoRA requests together, and the CPU build then mixes weights (DESIGN.md).
            "--max-num-seqs", "1",
            *self.extra_args,
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
        # Popped, not just unset here, so a value in the caller's shell can't re-enable it.
        env.pop("VLLM_ALLOW_RUNTIME_LORA_UPDATING", None)
        if self.runtime_lora:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        return env

    def start(self) -> None:
        """Start the server and block until `GET /health` answers 200.

        Raises RuntimeError with the log's tail if vLLM exits or is not healthy in time.
        """
        if self.running:
            return
        if not VLLM_PYTHON.exists():
            raise RuntimeError(f"{VLLM_PYTHON} is missing: run `make vllm` first")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=REPO,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() signals vLLM and its children together
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a preloaded prctl call runs there
            )
        _live.add(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the process group, SIGKILL it after `timeout_s`; return the exit code."""
        proc, self.proc = self.proc, None
        _live.discard(self)
        if proc is None:
            return None
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        # Children that ignored SIGTERM (or were orphaned by a crash) go too.
        _signal_group(proc.pid, signal.SIGKILL)
        return proc.returncode

    def restart(self) -> None:
        """Stop and start again on the same port, losing runtime-loaded adapters (as a real restart does)."""
        self.stop()
        self.start()

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def rss_bytes(self) -> int:
        """Resident memory of the whole process group (vLLM and its engine children), from /proc."""
        if not self.running:
            return 0
        rss_pages = [fields[21] for pid in group_pids(self.proc.pid) if (fields := _stat_fields(pid))]
        return sum(rss_pages) * os.sysconf("SC_PAGE_SIZE")  # field 24 of stat: resident pages

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"vLLM exited with {self.proc.returncode} before it was healthy; log tail:\n{self.log_tail()}"
                )
            if _health_ok(self.url):
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"vLLM not healthy after {self.startup_timeout_s:.0f}s; log tail:\n{self.log_tail()}"
        )


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`; zombies only wait for init to reap them."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(int(stat.parent.name))
        if fields and fields[2] == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _stat_fields(pid: int) -> list:
    """/proc/PID/stat from field 3 (state) on, numbers as ints; [] if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    fields = text.rsplit(")", 1)[1].split()  # the command name, in parentheses, may contain spaces
    return [fields[0], *(int(f) for f in fields[1:])]


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl  # loaded now, not between fork and exec
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: have the kernel SIGTERM it when the test process dies (even by SIGKILL).

    The kernel fires this when the *thread* that started the server exits, so start
    servers from the main thread (pytest fixtures do), not from a short-lived worker thread.
    """
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop(timeout_s=10)
