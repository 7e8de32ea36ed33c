"""Runs fixtures: no trainer until a test starts the real one (a process on a free port)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.procs import free_port, running_service


@pytest.fixture(autouse=True)
def trainer_down(cp_settings):
    """Every runs test: the trainer address points where nothing listens, until `trainer`."""
    cp_settings.SYNTHTUNE_TRAINER_ADDR = f"127.0.0.1:{free_port()}"
    return cp_settings


@pytest.fixture
def trainer(cp_settings, data_root: Path, tmp_path: Path, tiny_models: Path):
    """The real trainer service on the test's data root, with the tiny models; settings point at it."""
    with running_service(
        "trainer_svc",
        listen_var="SYNTHTUNE_TRAINER_LISTEN",
        env={"SYNTHTUNE_DATA_ROOT": str(data_root), "SYNTHTUNE_MODELS_ROOT": str(tiny_models)},
        log_path=tmp_path / "trainer.log",
    ) as service:
        cp_settings.SYNTHTUNE_TRAINER_ADDR = service.address
        yield service
