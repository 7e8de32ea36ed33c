"""The metrics settings: one port per process (0: off), refused when out of range, the stack's ports,
and PROMETHEUS_MULTIPROC_DIR: blank means unset, and only the web process gets it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from control_plane.config import ConfigError, load_config
from datagen_svc.config import load_settings as datagen_settings
from synthtune.settings import SettingsError
from synthtune.stack import METRICS_PORTS, MULTIPROC_VARS, REPO, Stack, StackConfig

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


# What each kind of process imports first: the services' entry modules, and the web process's
# WSGI app (Django's settings first, as in the worker and every management command).
ENTRY_IMPORTS = ["datagen_svc.__main__", "trainer_svc.__main__", "serving_proxy_svc.__main__", "control_plane.wsgi"]
PROBE = """
import os, sys
import {module}
from prometheus_client import Counter, values
Counter("probe_total", "A value made after the entry module's imports.").inc()
print(values.ValueClass._multiprocess, os.environ.get("PROMETHEUS_MULTIPROC_DIR"), sorted(os.listdir(".")))
"""


def _probe(module: str, tmp_path, **blank: str) -> str:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in MULTIPROC_VARS}
    env.update(blank, SYNTHTUNE_DATA_ROOT=str(tmp_path / "data"), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ENTRY_IMPORTS)
def test_a_blank_multiproc_dir_is_unset_before_prometheus_client_is_imported(module, tmp_path):
    # Present but empty, prometheus_client went multi-process and wrote counter_<pid>.db files into
    # the current directory (the repository root, under the stack and the tests).
    assert _probe(module, tmp_path, PROMETHEUS_MULTIPROC_DIR="") == "False None []"


def test_blank_covers_spaces_and_the_old_lower_case_name(tmp_path):
    assert _probe("synthtune.metrics", tmp_path, prometheus_multiproc_dir=" ") == "False None []"


def test_the_stack_gives_prometheus_multiproc_dir_to_the_web_process_only(tmp_path, monkeypatch):
    stack = Stack(StackConfig(data_root=tmp_path, http_port=18080, grpc_token=TOKEN))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "web-metrics"))
    monkeypatch.setenv("prometheus_multiproc_dir", str(tmp_path / "old-name"))
    env = stack.env()  # the services' and the worker's
    assert not set(MULTIPROC_VARS) & set(env)
    web = stack._web_env(env)
    assert web["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "web-metrics")
    assert "prometheus_multiproc_dir" not in web
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # blank: gunicorn_conf makes a folder itself
    assert not set(MULTIPROC_VARS) & set(stack._web_env(stack.env()))
