"""Settings from the environment: defaults, clear errors without echoing values, the secret key file."""

from __future__ import annotations

import stat

import pytest

from control_plane.config import ConfigError, ControlPlaneConfig, load_config, secret_key

SECRET_VARS = ("SYNTHTUNE_GRPC_TOKEN", "DJANGO_SECRET_KEY", "SYNTHTUNE_DATAGEN_ADDR", "DJANGO_DEBUG")


@pytest.fixture
def env(monkeypatch):
    for name in (*SECRET_VARS, "SYNTHTUNE_DATA_ROOT", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    load_config.cache_clear()
    yield monkeypatch
    load_config.cache_clear()


def test_defaults_need_no_environment(env):
    config = load_config()
    assert config.datagen_addr == "127.0.0.1:50051" and config.debug is False and config.grpc_token == ""
    assert config.allowed_hosts_list == ["localhost", "127.0.0.1", "[::1]"]
    assert str(config.data_root) == "var"


def test_bad_values_name_the_variable_and_never_echo_the_value(env):
    env.setenv("SYNTHTUNE_GRPC_TOKEN", "short-secret")
    env.setenv("SYNTHTUNE_DATAGEN_ADDR", "no-port-here")
    env.setenv("DJANGO_DEBUG", "perhaps")
    with pytest.raises(ConfigError) as error:
        load_config()
    message = str(error.value)
    for name in ("SYNTHTUNE_GRPC_TOKEN", "SYNTHTUNE_DATAGEN_ADDR", "DJANGO_DEBUG"):
        assert name in message
    assert "short-secret" not in message and "no-port-here" not in message


def test_lists_are_comma_separated(env):
    env.setenv("DJANGO_ALLOWED_HOSTS", " cp.example.com, localhost ,")
    assert load_config().allowed_hosts_list == ["cp.example.com", "localhost"]


def test_without_a_secret_key_one_is_generated_once_private_and_reused(tmp_path):
    tmp_path = tmp_path / "fresh-root"  # created on demand
    config = ControlPlaneConfig(data_root=tmp_path)
    first = secret_key(config)
    path = tmp_path / ".django-secret-key"
    assert len(first) >= 50 and path.read_text() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key(ControlPlaneConfig(data_root=tmp_path)) == first  # the worker and web agree
    assert not [p for p in tmp_path.iterdir() if p.name != ".django-secret-key"]  # no temp files left
    explicit = "x" * 40
    assert secret_key(ControlPlaneConfig(data_root=tmp_path, secret_key=explicit)) == explicit


def test_the_openai_relay_settings_default_and_refuse_a_padded_vllm_token(env):
    env.delenv("SYNTHTUNE_VLLM_TOKEN", raising=False)
    env.delenv("SYNTHTUNE_OPENAI_AUTOLOAD", raising=False)
    config = load_config()
    assert config.openai_autoload is True and config.vllm_token == ""
    assert "vllm_token" not in repr(config)
    load_config.cache_clear()
    env.setenv("SYNTHTUNE_OPENAI_AUTOLOAD", "false")
    env.setenv("SYNTHTUNE_VLLM_TOKEN", "vllm-key-0123456789")
    config = load_config()
    assert config.openai_autoload is False and config.vllm_token == "vllm-key-0123456789"
    load_config.cache_clear()
    env.setenv("SYNTHTUNE_VLLM_TOKEN", "pasted-vllm-key\n")
    with pytest.raises(ConfigError) as error:
        load_config()
    assert "SYNTHTUNE_VLLM_TOKEN" in str(error.value) and "pasted-vllm-key" not in str(error.value)
