"""The old Flask app's variables as aliases of synthtune's settings, read by every process's
settings object: DATA_DIR / FINETUNE_ROOT / ADAPTER_EXPORT_DIR (the one data root),
DEFAULT_ADAPTER_NAME, HF_HOME / TRANSFORMERS_CACHE."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from control_plane.config import ConfigError, load_config
from datagen_svc.config import load_settings as datagen_settings
from serving_proxy_svc.config import load_settings as proxy_settings
from synthtune.settings import SettingsError
from tests.support.procs import TEST_GRPC_TOKEN
from trainer_svc.config import load_settings as trainer_settings

OLD = ("DATA_DIR", "FINETUNE_ROOT", "ADAPTER_EXPORT_DIR", "DEFAULT_ADAPTER_NAME", "TRANSFORMERS_CACHE", "HF_HOME")
NEW = ("SYNTHTUNE_DATA_ROOT", "SYNTHTUNE_DEFAULT_ADAPTER_NAME", "SYNTHTUNE_HF_HUB_CACHE", "HF_HUB_CACHE")


@pytest.fixture
def env(monkeypatch):
    for name in (*OLD, *NEW):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNTHTUNE_GRPC_TOKEN", TEST_GRPC_TOKEN)
    load_config.cache_clear()
    yield monkeypatch
    load_config.cache_clear()


def roots() -> set[Path]:
    """The data root as the control plane and each service read it."""
    return {
        load_config().data_root,
        datagen_settings().data_root,
        trainer_settings().data_root,
        proxy_settings().data_root,
    }


def test_data_dir_is_the_data_root_for_every_process(env, tmp_path):
    env.setenv("DATA_DIR", str(tmp_path / "data"))
    assert roots() == {tmp_path / "data"}
    # Datasets land in <DATA_DIR>/datasets, and vLLM loads adapters from the same root.
    assert proxy_settings().adapters_dir == (tmp_path / "data" / "adapters").resolve()


def test_finetune_root_and_adapter_export_dir_name_the_roots_runs_and_adapters(env, tmp_path):
    env.setenv("FINETUNE_ROOT", str(tmp_path / "vol" / "runs"))
    assert roots() == {tmp_path / "vol"}
    env.setenv("ADAPTER_EXPORT_DIR", str(tmp_path / "vol" / "adapters"))
    env.setenv("DATA_DIR", str(tmp_path / "vol"))
    assert roots() == {tmp_path / "vol"}  # all three agree
    env.delenv("FINETUNE_ROOT")
    env.delenv("DATA_DIR")
    assert roots() == {tmp_path / "vol"}
    assert proxy_settings().adapters_dir == (tmp_path / "vol" / "adapters").resolve()


def test_an_old_folder_synthtune_cant_honour_is_refused_naming_it(env):
    # The old chart's separate volumes: synthtune keeps one root, so it says so instead of
    # silently writing adapters where vLLM doesn't look.
    env.setenv("DATA_DIR", "/app/data")
    env.setenv("ADAPTER_EXPORT_DIR", "/app/adapters")
    with pytest.raises(SettingsError, match="DATA_DIR=/app/data.*ADAPTER_EXPORT_DIR=/app/adapters"):
        trainer_settings()
    with pytest.raises(ConfigError, match="different data roots"):
        load_config()
    env.delenv("DATA_DIR")
    env.delenv("ADAPTER_EXPORT_DIR")
    env.setenv("FINETUNE_ROOT", "/app/models/finetunes")
    with pytest.raises(SettingsError, match="FINETUNE_ROOT=/app/models/finetunes .*folder called 'runs'"):
        datagen_settings()


def test_synthtune_data_root_wins_and_the_old_folders_are_then_ignored(env, tmp_path):
    env.setenv("SYNTHTUNE_DATA_ROOT", str(tmp_path / "new"))
    env.setenv("DATA_DIR", str(tmp_path / "old"))
    env.setenv("ADAPTER_EXPORT_DIR", "/app/adapters")  # would be refused on its own
    assert roots() == {tmp_path / "new"}
    assert trainer_settings(data_root=tmp_path / "override").data_root == tmp_path / "override"


def test_default_adapter_name_is_the_runs_adapter_stem(env):
    assert load_config().default_adapter_name == ""
    env.setenv("DEFAULT_ADAPTER_NAME", "support")
    load_config.cache_clear()
    assert load_config().default_adapter_name == "support"
    env.setenv("SYNTHTUNE_DEFAULT_ADAPTER_NAME", "faq")
    load_config.cache_clear()
    assert load_config().default_adapter_name == "faq"  # the synthtune name wins
    env.setenv("SYNTHTUNE_DEFAULT_ADAPTER_NAME", "../escape")
    load_config.cache_clear()
    with pytest.raises(ConfigError, match="SYNTHTUNE_DEFAULT_ADAPTER_NAME"):
        load_config()


def _hub_cache_seen_by_a_run_process(environment: dict[str, str]) -> str:
    """HF_HUB_CACHE as huggingface_hub resolves it in a process started with `environment`
    (what a training process inherits from the trainer)."""
    code = "from huggingface_hub import constants; print(constants.HF_HUB_CACHE)"
    clean = {k: v for k, v in os.environ.items() if k not in (*OLD, *NEW)}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **environment}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_hf_home_and_transformers_cache_reach_the_training_processes(env, tmp_path):
    # HF_HOME: huggingface_hub itself reads it in the trainer and its run processes.
    assert _hub_cache_seen_by_a_run_process({"HF_HOME": str(tmp_path / "home")}) == str(tmp_path / "home" / "hub")
    # TRANSFORMERS_CACHE: transformers 5 ignores it, so the trainer passes it on as HF_HUB_CACHE.
    env.setenv("TRANSFORMERS_CACHE", str(tmp_path / "tc"))
    env.setenv("HF_HOME", str(tmp_path / "home"))
    exported = trainer_settings().hub_environment
    assert exported == {"HF_HUB_CACHE": str(tmp_path / "tc")}
    assert _hub_cache_seen_by_a_run_process({"HF_HOME": str(tmp_path / "home"), **exported}) == str(tmp_path / "tc")
    env.setenv("SYNTHTUNE_HF_HUB_CACHE", str(tmp_path / "st"))
    assert trainer_settings().hub_environment == {"HF_HUB_CACHE": str(tmp_path / "st")}  # synthtune's wins
