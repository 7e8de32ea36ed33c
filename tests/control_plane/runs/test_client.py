"""synthtune.client's runs and adapters methods against a live control plane (real HTTP, SSE)."""

from __future__ import annotations

import json

import pytest
from rest_framework.authtoken.models import Token

from control_plane.config import ConfigError, load_config
from synthtune.client import ApiError, Client
from tests.control_plane.runs.factories import AdapterFactory, RunEventFactory, RunFactory
from tests.control_plane.runs.helpers import make_dataset


@pytest.fixture
def http(live_server, user):
    with Client(live_server.url, token=Token.objects.create(user=user).key, timeout_s=10) as client:
        yield client


@pytest.mark.django_db(transaction=True)
def test_client_reads_runs_events_and_adapters_and_follows_a_run(http, data_root):
    run = RunFactory(state="succeeded", step=2, max_steps=2, last_seq=4)
    RunEventFactory(run=run, seq=1, type="state_changed", payload={"state": "running", "error": ""})
    RunEventFactory(run=run, seq=2)
    RunEventFactory(run=run, seq=3)
    RunEventFactory(run=run, seq=4, type="state_changed", payload={"state": "succeeded", "error": ""})
    adapter = AdapterFactory(run=run)
    (data_root / adapter.path).mkdir(parents=True)
    (data_root / adapter.path / "manifest.json").write_text(json.dumps({"run_id": run.run_id}))

    assert [r["run_id"] for r in http.runs(state="succeeded")] == [run.run_id]
    assert http.run(run.run_id)["adapter"] == adapter.name
    steps = http.run_events(run.run_id, types=["step"])["events"]
    assert [e["seq"] for e in steps] == [2, 3]
    assert [e["seq"] for e in http.run_events(run.run_id, after_seq=3)["events"]] == [4]
    followed = list(http.follow_run(run.run_id))
    assert [e.id for e in followed] == [1, 2, 3, 4] and followed[-1].data["payload"]["state"] == "succeeded"
    assert [a["name"] for a in http.adapters(run=run.run_id)] == [adapter.name]
    assert http.adapter(adapter.name)["manifest"] == adapter.manifest
    assert http.adapter_manifest(adapter.name) == {"run_id": run.run_id}


@pytest.mark.django_db(transaction=True)
def test_client_errors_carry_the_one_body(http, cp_settings):
    make_dataset()
    with pytest.raises(ApiError) as error:
        http.start_run(datasets=["colours"], base_model="tiny-phi3", hyperparameters={"learning_rate": 0})
    assert error.value.status == 400 and error.value.extra["field"] == "hyperparameters.learning_rate"
    with pytest.raises(ApiError) as error:
        http.start_run(datasets=["colours"], base_model="tiny-phi3")
    assert error.value.status == 503 and error.value.code == "UNAVAILABLE"
    assert cp_settings.SYNTHTUNE_TRAINER_ADDR in error.value.message
    with pytest.raises(ApiError) as error:
        http.cancel_run("nope")
    assert error.value.status == 404


@pytest.mark.django_db(transaction=True)
def test_runs_start_sends_eval_datasets(live_server, user, monkeypatch):
    """`synthtune runs start --eval-dataset`: the names reach the API (which checks them before it
    asks the trainer, down here), so an unknown one is a user error naming eval_datasets."""
    from click.testing import CliRunner

    from synthtune.cli.main import cli

    make_dataset()
    monkeypatch.setenv("SYNTHTUNE_API_URL", live_server.url)
    monkeypatch.setenv("SYNTHTUNE_API_TOKEN", Token.objects.create(user=user).key)
    monkeypatch.setenv("SYNTHTUNE_CONFIG", "/nonexistent/config.json")
    args = ["runs", "start", "--dataset", "colours", "--eval-dataset", "no-such-eval", "--no-watch"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 2 and "no-such-eval" in result.output and "field: eval_datasets" in result.output


def test_a_bad_trainer_address_names_the_variable_and_not_the_value(monkeypatch):
    monkeypatch.setenv("SYNTHTUNE_TRAINER_ADDR", "secret-host-without-port")
    load_config.cache_clear()
    try:
        with pytest.raises(ConfigError) as error:
            load_config()
        assert "SYNTHTUNE_TRAINER_ADDR" in str(error.value) and "secret-host" not in str(error.value)
        monkeypatch.delenv("SYNTHTUNE_TRAINER_ADDR")
        load_config.cache_clear()
        assert load_config().trainer_addr == "127.0.0.1:50052"
    finally:
        load_config.cache_clear()
