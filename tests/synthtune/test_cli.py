"""The `synthtune` CLI as a user runs it: a real process against the running stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from synthtune.client import Client
from tests.support.fake_openai import FakeOpenAI, schema_name
from tests.support.stack import running_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_models, vllm_server):
    env = {"SYNTHTUNE_MODELS_ROOT": str(tiny_models), "SYNTHTUNE_VLLM_URL": vllm_server.url,
           "SYNTHTUNE_VLLM_MAX_LORA_RANK": "8"}
    with running_stack(tmp_path_factory.mktemp("cli"), **env) as running:
        yield running


def synthtune(stack, *args: str, token: str | None = None, url: str | None = None, cwd=None):
    env = {**os.environ, "SYNTHTUNE_API_URL": url or stack.url, "SYNTHTUNE_API_TOKEN": stack.token if token is None else token,
           "SYNTHTUNE_CONFIG": "/nonexistent/config.json"}
    return subprocess.run([sys.executable, "-m", "synthtune.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_help_is_useful_on_every_command(stack):
    for args in (["--help"], ["datasets", "--help"], ["datasets", "generate", "--help"], ["datasets", "curate", "--help"],
                 ["datasets", "resume", "--help"], ["runs", "start", "--help"], ["runs", "resume", "--help"],
                 ["adapters", "--help"], ["adapters", "load", "--help"], ["compare", "--help"],
                 ["compare", "one", "--help"], ["compare", "batch", "--help"]):
        result = synthtune(stack, *args)
        assert result.returncode == 0 and "Usage: synthtune" in result.stdout, args
    assert "Exit codes" in synthtune(stack, "--help").stdout


def test_upload_list_show_export_and_user_errors(stack, tmp_path):
    good = tmp_path / "faq.jsonl"
    good.write_text("".join(json.dumps({"instruction": f"Q{i}?", "output": f"A{i}."}) + "\n" for i in range(12)))
    uploaded = synthtune(stack, "--json", "datasets", "upload", str(good))
    assert uploaded.returncode == 0, uploaded.stderr
    assert json.loads(uploaded.stdout)["rows"] == 12

    listed = json.loads(synthtune(stack, "--json", "datasets", "list").stdout)
    assert "faq" in [d["name"] for d in listed]
    shown = json.loads(synthtune(stack, "--json", "datasets", "show", "faq", "--rows", "2").stdout)
    assert shown["preview"] == [{"instruction": "Q0?", "output": "A0."}, {"instruction": "Q1?", "output": "A1."}]
    out = tmp_path / "faq-chat.jsonl"
    assert synthtune(stack, "datasets", "export", "faq", "--format", "chat", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text().splitlines()[0])["messages"][-1] == {"role": "assistant", "content": "A0."}

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": "y"}\nnot json\n')
    refused = synthtune(stack, "datasets", "upload", str(bad))
    assert refused.returncode == 2 and "line 2" in refused.stderr
    assert synthtune(stack, "datasets", "show", "nope").returncode == 2
    assert synthtune(stack, "datasets", "list", token="").returncode == 2  # no token: a user error
    assert "token" in synthtune(stack, "datasets", "list", token="").stderr
    assert synthtune(stack, "datasets", "list", url="http://127.0.0.1:9").returncode == 3  # unreachable


def test_generate_then_train_with_progress_and_exit_codes(stack, vllm_server):
    generated = synthtune(stack, "datasets", "generate", "--name", "cli-gen", "--base-url", vllm_server.base_url,
                          "--model", vllm_server.model, "--mode", "from_instructions", "--instruction", "Name a fruit.",
                          "--instruction", "Name a river.", "--instruction", "Name a city.", "--max-tokens", "16")
    assert generated.returncode == 0, generated.stderr
    assert "generate" in generated.stdout and "dataset cli-gen" in generated.stdout

    trained = synthtune(stack, "--json", "runs", "start", "--dataset", "faq", "--base-model", "tiny-phi3",
                        "--epochs", "1", "--max-length", "128", "--device", "cpu", "--adapter-name", "cli")
    assert trained.returncode == 0, trained.stderr
    run = json.loads(trained.stdout)
    assert run["state"] == "succeeded" and run["adapter"].startswith("cli-v")
    assert "train" in trained.stderr  # the progress bar goes to stderr under --json
    adapters = json.loads(synthtune(stack, "--json", "adapters", "list").stdout)
    assert run["adapter"] in [a["name"] for a in adapters]
    watched = synthtune(stack, "runs", "watch", run["run_id"])
    assert watched.returncode == 0 and "succeeded" in watched.stdout

    bad = synthtune(stack, "runs", "start", "--dataset", "faq", "--lr", "-1", "--no-watch")
    assert bad.returncode == 2 and "learning_rate" in bad.stderr
    assert synthtune(stack, "runs", "cancel", "does-not-exist").returncode == 2
    not_failed = synthtune(stack, "runs", "resume", run["run_id"])  # succeeded: nothing to resume
    assert not_failed.returncode == 2 and "only a failed run can be resumed" in not_failed.stderr


def _judge(body: dict) -> str | None:
    """A judge that fails the row about tides and passes the rest."""
    if schema_name(body) != "judgement":
        return None
    score = 1 if "tides" in body["messages"][0]["content"] else 5
    names = [name for name in body["response_format"]["json_schema"]["schema"]["properties"] if name != "reason"]
    return json.dumps({"reason": "ok", **{name: score for name in names}})


def test_curate_watches_the_job_into_a_new_version(stack, monkeypatch):
    rows = [{"instruction": text, "output": "An answer."} for text in (
        "Explain how the DNS system resolves a domain name to an address.",
        "Explain how the DNS system resolves a domain name into an address.",  # near duplicate
        "Write a haiku about autumn leaves.", "Write a haiku about autumn leaves.",  # exact duplicate
        "Describe the tides badly.", "Name three primary colours of paint.")]
    with Client(stack.url, token=stack.token) as api:
        api.upload_rows("cli-raw", rows)
    monkeypatch.setenv("JUDGE_TOKEN", "cli-judge-token-0123456")
    with FakeOpenAI(respond=_judge) as judge:
        curated = synthtune(stack, "--json", "datasets", "curate", "cli-raw", "--near-dup", "--judge-url",
                            judge.base_url, "--judge-model", judge.model, "--judge-min-score", "3")
        assert curated.returncode == 0, curated.stderr
        assert {r.headers["Authorization"] for r in judge.chat_requests()} == {"Bearer cli-judge-token-0123456"}
    job = json.loads(curated.stdout)
    assert (job["state"], job["dataset"], job["kept"]) == ("succeeded", "cli-raw.v2", 3)
    assert job["report"]["dropped_by"] == {"duplicate": 1, "judge": 1, "near_duplicate": 1}
    assert "curate" in curated.stderr  # the progress bar, on stderr under --json
    shown = json.loads(synthtune(stack, "--json", "datasets", "show", "cli-raw.v2").stdout)
    assert shown["parent"] == "cli-raw" and shown["operation"]["op"] == "curate"

    unknown = synthtune(stack, "datasets", "curate", "cli-raw", "--decontam", "no-such-set")
    assert unknown.returncode == 2 and "filters.decontam.eval_datasets" in unknown.stderr
    unset = synthtune(stack, "datasets", "curate", "cli-raw", "--judge-url", judge.base_url, "--judge-model", "m",
                      "--judge-token-env", "NO_SUCH_TOKEN_VAR")
    assert unset.returncode == 2 and "NO_SUCH_TOKEN_VAR" in unset.stderr


def _trained_adapter(stack, name: str) -> str:
    rows = [{"instruction": f"Describe the map, number {n}.", "output": "A map of the sea."} for n in range(16)]
    with Client(stack.url, token=stack.token, timeout_s=120) as api:
        api.request("POST", "/api/v1/datasets/", json={"name": name, "rows": rows})
        run = api.start_run(datasets=[name], base_model="tiny-phi3", adapter_name=name,
                            hyperparameters={"epochs": 1, "max_length": 64, "device": "cpu"})
        for _ in api.follow_run(run["run_id"]):
            pass
        finished = api.run(run["run_id"])
    assert finished["state"] == "succeeded", finished
    return finished["adapter"]


def test_load_compare_and_unload(stack, vllm_server):
    adapter = _trained_adapter(stack, "cli-serve")
    loaded = synthtune(stack, "--json", "adapters", "load", adapter)
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["replicas"] == [
        {"target": vllm_server.url, "ok": True, "served_name": adapter, "code": "", "message": "",
         "already_loaded": False}]

    one = synthtune(stack, "compare", "one", adapter, "Describe the map, number 3.", "--max-tokens", "8")
    assert one.returncode == 0, one.stderr
    assert "base" in one.stdout and f"fine-tuned ({adapter})" in one.stdout
    as_json = json.loads(synthtune(stack, "--json", "compare", "one", adapter, "Hi", "--max-tokens", "4").stdout)
    assert as_json["base"]["completion_tokens"] <= 4 and as_json["adapter"]["model"] == adapter

    batch = synthtune(stack, "--json", "compare", "batch", adapter, "--dataset", "cli-serve", "--limit", "2",
                      "--max-tokens", "8")
    assert batch.returncode == 0, batch.stderr
    result = json.loads(batch.stdout)
    assert len(result["rows"]) == 2 and result["summary"]["rows"] == 2 and result["comparison_id"]
    assert "compare" in batch.stderr  # the progress bar goes to stderr under --json
    shown = synthtune(stack, "compare", "batch", adapter, "--dataset", "cli-serve", "--limit", "2")
    assert "Summary: 2 rows" in shown.stdout and "exact match" in shown.stdout

    assert synthtune(stack, "compare", "one", adapter, "Hi", "--temperature", "3").returncode == 2  # click refuses
    assert synthtune(stack, "compare", "one", "no-such-adapter", "Hi").returncode == 2  # 404
    unloaded = synthtune(stack, "--json", "adapters", "unload", adapter)
    assert unloaded.returncode == 0 and json.loads(unloaded.stdout)["deployments"][0]["state"] == "unloaded"
    not_loaded = synthtune(stack, "compare", "one", adapter, "Hi")
    assert not_loaded.returncode == 2 and "load it first" in not_loaded.stderr
