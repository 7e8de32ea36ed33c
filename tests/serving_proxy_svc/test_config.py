"""Proxy settings: defaults, the target list, the adapter root, and failing fast on bad values."""

from __future__ import annotations

import pytest

from serving_proxy_svc.config import SettingsError, load_settings, normalize_target
from tests.support.procs import TEST_GRPC_TOKEN


def settings(**overrides):
    return load_settings(grpc_token=TEST_GRPC_TOKEN, **overrides)


def test_defaults(tmp_path, monkeypatch):
    for name in ("SYNTHTUNE_VLLM_URL", "SYNTHTUNE_VLLM_REPLICAS", "SYNTHTUNE_VLLM_ADAPTER_ROOT",
                 "SYNTHTUNE_VLLM_TOKEN", "SYNTHTUNE_VLLM_MAX_LORA_RANK", "SYNTHTUNE_SERVING_PROXY_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    s = settings(data_root=tmp_path / "data")
    assert s.listen == "127.0.0.1:50053"
    assert s.vllm_url == "http://127.0.0.1:8000" and s.replicas == ("http://127.0.0.1:8000",)
    assert s.known_targets == ("http://127.0.0.1:8000",)
    # Same machine: vLLM sees the data root's adapters/ at its local absolute path.
    assert s.vllm_adapter_root == str((tmp_path / "data" / "adapters").resolve())
    assert s.vllm_max_lora_rank == 8 and s.vllm_token == ""
    assert s.vllm_timeout_s > 0 and s.vllm_generation_timeout_s >= s.vllm_timeout_s


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("SYNTHTUNE_VLLM_URL", "http://vllm-0:8000/v1/")
    monkeypatch.setenv("SYNTHTUNE_VLLM_REPLICAS", " http://vllm-0:8000 , http://vllm-1:8000/v1,http://vllm-1:8000")
    monkeypatch.setenv("SYNTHTUNE_VLLM_ADAPTER_ROOT", "/models-pvc/adapters/")
    monkeypatch.setenv("SYNTHTUNE_VLLM_MAX_LORA_RANK", "64")
    monkeypatch.setenv("SYNTHTUNE_VLLM_TOKEN", "vllm-secret-token")
    s = settings()
    assert s.vllm_url == "http://vllm-0:8000"
    assert s.replicas == ("http://vllm-0:8000", "http://vllm-1:8000")  # normalised, de-duplicated
    assert s.vllm_adapter_root == "/models-pvc/adapters" and s.vllm_max_lora_rank == 64
    assert s.vllm_token == "vllm-secret-token" and "vllm-secret-token" not in repr(s)


@pytest.mark.parametrize(("variable", "value"), [
    ("SYNTHTUNE_VLLM_URL", "ftp://x"),
    ("SYNTHTUNE_VLLM_URL", "127.0.0.1:8000"),
    ("SYNTHTUNE_VLLM_URL", "http://h:1/?a=b"),
    ("SYNTHTUNE_VLLM_REPLICAS", "http://ok:1,nope"),
    ("SYNTHTUNE_VLLM_ADAPTER_ROOT", "relative/adapters"),
    ("SYNTHTUNE_VLLM_MAX_LORA_RANK", "0"),
    ("SYNTHTUNE_VLLM_TIMEOUT_S", "-1"),
    ("SYNTHTUNE_VLLM_GENERATION_TIMEOUT_S", "nan"),
    ("SYNTHTUNE_SERVING_PROXY_LISTEN", "no-port"),
])
def test_bad_values_fail_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        settings()
    assert variable in str(info.value)


def test_a_bad_token_value_is_never_echoed(monkeypatch):
    monkeypatch.setenv("SYNTHTUNE_VLLM_TOKEN", " secret-with-space ")
    with pytest.raises(SettingsError) as info:
        settings()
    assert "secret-with-space" not in str(info.value)


@pytest.mark.parametrize(("url", "normal"), [
    ("http://h:8000", "http://h:8000"),
    ("http://h:8000/", "http://h:8000"),
    ("http://h:8000/v1", "http://h:8000"),
    ("https://gw.example/vllm/a/v1/", "https://gw.example/vllm/a"),
])
def test_targets_are_normalised(url, normal):
    assert normalize_target(url) == normal
