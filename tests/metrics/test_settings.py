"""The metrics settings: one port per process (0: off), refused when out of range, and the stack's ports."""

from __future__ import annotations

import pytest

from control_plane.config import ConfigError, load_config
from datagen_svc.config import load_settings as datagen_settings
from synthtune.settings import SettingsError
from synthtune.stack import METRICS_PORTS, Stack, StackConfig

TOKEN = "settings-test-token-0123456789"


def test_services_read_metrics_port_and_host_and_default_to_off(monkeypatch):
    monkeypatch.setenv("SYNTHTUNE_GRPC_TOKEN", TOKEN)
    monkeypatch.delenv("SYNTHTUNE_METRICS_PORT", raising=False)
    monkeypatch.delenv("SYNTHTUNE_METRICS_HOST", raising=False)
    off = datagen_settings()
    assert (off.metrics_port, off.metrics_host) == (0, "0.0.0.0")
    monkeypatch.setenv("SYNTHTUNE_METRICS_PORT", "9101")
    monkeypatch.setenv("SYNTHTUNE_METRICS_HOST", "127.0.0.1")
    on = datagen_settings()
    assert (on.metrics_port, on.metrics_host) == (9101, "127.0.0.1")
    monkeypatch.setenv("SYNTHTUNE_METRICS_PORT", "70000")
    with pytest.raises(SettingsError, match="SYNTHTUNE_METRICS_PORT"):
        datagen_settings()


def test_control_plane_refuses_a_short_metrics_token_naming_the_variable(monkeypatch):
    load_config.cache_clear()
    try:
        monkeypatch.setenv("SYNTHTUNE_METRICS_TOKEN", "short")
        with pytest.raises(ConfigError, match="SYNTHTUNE_METRICS_TOKEN") as info:
            load_config()
        assert "short" not in str(info.value)  # never echoes a secret
        monkeypatch.setenv("SYNTHTUNE_METRICS_TOKEN", "a-long-enough-scrape-token")
        monkeypatch.setenv("SYNTHTUNE_METRICS_PORT", "9104")
        config = load_config()
        assert (config.metrics_port, config.metrics_token) == (9104, "a-long-enough-scrape-token")
    finally:
        load_config.cache_clear()


def test_the_stack_gives_each_process_its_own_metrics_port(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHTUNE_METRICS_PORT", "9999")  # inherited from a shell: must not reach them all
    config = StackConfig(data_root=tmp_path, http_port=18080, grpc_token=TOKEN)
    assert config.metrics_ports == METRICS_PORTS == {"datagen": 9101, "trainer": 9102, "serving-proxy": 9103,
                                                      "worker": 9104}
    assert config.metrics_urls() == {
        "datagen": "http://127.0.0.1:9101/metrics", "trainer": "http://127.0.0.1:9102/metrics",
        "serving-proxy": "http://127.0.0.1:9103/metrics", "worker": "http://127.0.0.1:9104/metrics",
        "control-plane": "http://127.0.0.1:18080/metrics"}
    stack = Stack(config)
    env = stack.env()
    assert env["SYNTHTUNE_METRICS_HOST"] == "127.0.0.1"  # a laptop's metrics stay on loopback
    assert stack._with_metrics_port(env, "trainer")["SYNTHTUNE_METRICS_PORT"] == "9102"
    assert stack._with_metrics_port(env, "control-plane")["SYNTHTUNE_METRICS_PORT"] == "0"
    off = StackConfig(data_root=tmp_path, http_port=18080, grpc_token=TOKEN, metrics_ports={"datagen": 0})
    assert off.metrics_urls() == {"control-plane": "http://127.0.0.1:18080/metrics"}
