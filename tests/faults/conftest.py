"""One running stack for the fault tests (synthtune.stack, as `make up` runs it), a fake teacher
on loopback, and the stack's datasets/ and adapters/ folders on small tmpfs mounts, so a test can
fill them to the last byte (tests.faults.helpers.disk_full) without touching the machine's disk.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.stack import running_stack

TMPFS_BYTES = 16 << 20  # room for the tests' datasets and tiny adapters


def _mount_tmpfs(folder: Path) -> str | None:
    """Mount a tmpfs on `folder`; None, or why not (not root, no mount(8), refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0755", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"mount failed: {exc}"
    return None if done.returncode == 0 else f"mount -t tmpfs refused: {done.stderr.strip()}"


@contextmanager
def _tmpfs(folder: Path) -> Iterator[str | None]:
    reason = _mount_tmpfs(folder)
    try:
        yield reason
    finally:
        if reason is None:
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True, timeout=30)


@pytest.fixture(scope="package")
def teacher():
    with FakeOpenAI(latency_s=0.15) as fake:
        yield fake


@pytest.fixture(scope="package")
def vllm():
    """The serving proxy's vLLM: a fake, so a test can set what /v1/models lists and how slowly
    it answers (a real vLLM can't be paced); it lists nothing loaded until a test says so."""
    with FakeOpenAI(model="tiny-phi3", models=[{"id": "tiny-phi3", "root": "/models/tiny-phi3"}]) as fake:
        yield fake


@pytest.fixture(scope="package")
def small_disks(tmp_path_factory):
    """(data root, None or why the tmpfs mounts are missing)."""
    root = tmp_path_factory.mktemp("faults")
    with ExitStack() as mounts:
        reasons = [mounts.enter_context(_tmpfs(root / name)) for name in ("datasets", "adapters")]
        yield root, next((r for r in reasons if r), None)


@pytest.fixture(scope="package")
def stack(small_disks, tiny_models, vllm):
    root, _ = small_disks
    with running_stack(
        root,
        SYNTHTUNE_MODELS_ROOT=str(tiny_models),
        SYNTHTUNE_VLLM_URL=vllm.base_url.removesuffix("/v1"),
        SYNTHTUNE_TRAINER_CHECKPOINT_STEPS="10",
        SYNTHTUNE_WORKER_BACKOFF_MAX_S="1",
    ) as running:
        yield running


@pytest.fixture(scope="package")
def api(stack):
    # A fresh trainer's first StartRun imports transformers to check the rows: over 30 s on a busy machine.
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Token {stack.token}"},
                      timeout=120) as client:
        yield client
