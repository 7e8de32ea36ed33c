"""Evals during training on the tiny Phi-3: every N steps, generation metrics, the best checkpoint,
early stopping, and experiment tracking (a real MLflow file store read back through MLflow's client).

THE EARLY STOPPING RUN: rows whose answers are arbitrary words (nothing to generalise), a high
learning rate and an eval every 2 steps: the eval loss falls while the model learns the format
and the end token, then rises as it memorises the training answers. Patience 2 stops it there;
the exported adapter must be the best step's checkpoint, tensor for tensor, not the last one's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from synthtune.errors import InvalidArgument
from synthtune.settings import SettingsError
from tests.support.procs import TEST_GRPC_TOKEN
from tests.trainer_svc.conftest import write_dataset
from trainer_svc.checkpoints import checkpoints_dir
from trainer_svc.config import load_settings
from trainer_svc.training import main, validate_run

pytestmark = pytest.mark.slow

WORDS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "glacier", "harbor", "iris", "jade", "kelp",
         "lagoon", "marble", "nectar", "onyx", "pebble", "quartz", "reef", "slate", "tundra"]
EARLY = {"epochs": 20, "max_length": 64, "learning_rate": 2e-2, "lr_scheduler": "constant", "packing": False,
         "batch_size": 4, "gradient_accumulation_steps": 1, "eval_fraction": 0.2, "seed": 5,
         "eval_steps": 2, "early_stopping_patience": 2, "eval_generate_rows": 2, "eval_max_new_tokens": 8,
         "checkpoint_steps": 0, "checkpoint_keep": 2, "keep_checkpoints": True}


def arbitrary_rows(n: int) -> list[dict]:
    rng = random.Random(3)
    return [{"instruction": f"Code word {i}?", "output": " ".join(rng.sample(WORDS, 3))} for i in range(n)]


def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path / "adapter_model.safetensors")


def _same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_exports_the_best_steps_weights(make_config, data_root):
    dataset = write_dataset(data_root, "codes", arbitrary_rows(40))
    events: list[dict] = []
    result = main(make_config(datasets=[dataset], training=EARLY), on_event=events.append)
    assert result.status == "succeeded"

    evals = [e for e in events if e["type"] == "eval"]
    started = next(e for e in events if e["type"] == "started")
    last = result.metrics["steps"]
    # Every 2 steps, stopped early: patience 2 means the last two evals did not beat the best.
    assert [e["step"] for e in evals] == list(range(2, last + 1, 2)) and last < started["max_steps"]
    best = [e for e in evals if e["is_best"]][-1]
    assert all(e["eval_loss"] >= best["eval_loss"] for e in evals)
    assert [e["step"] for e in evals[-2:]] == [best["step"] + 2, best["step"] + 4]  # the patience
    assert any("early stopping at step" in e.get("message", "") for e in events)
    # Generation metrics on the held-out rows, at every eval.
    assert all(0 <= e["eval_exact_match"] <= 1 and 0 <= e["eval_chrf"] <= 100 and e["generation_s"] > 0
               for e in evals)
    assert all(e["metric"] == "eval_loss" and e["eval_mean_token_accuracy"] is not None for e in evals)

    # The export is the best step's checkpoint, tensor for tensor, and not the last step's.
    folder = checkpoints_dir(data_root, "run-1")
    exported = _tensors(result.export.path)
    assert _same(exported, _tensors(folder / f"checkpoint-{best['step']}"))
    assert not _same(exported, _tensors(folder / f"checkpoint-{last}"))

    manifest = json.loads((result.export.path / "manifest.json").read_text())
    record = manifest["best_checkpoint"]
    assert record["exported_step"] == record["step"] == best["step"] < record["last_step"] == last
    assert record["metric"] == "eval_loss" and record["value"] == best["eval_loss"]
    assert record["early_stopped"] is True and record["early_stopping"]["patience"] == 2
    assert "lowest eval_loss" in record["why"] and f"step {best['step']}" in record["why"]
    strip = lambda e: {k: v for k, v in e.items() if k not in ("type", "max_steps", "time")}  # noqa: E731
    assert manifest["evals"] == [strip(e) for e in evals]
    assert result.metrics["best_step"] == best["step"] == result.metrics["exported_step"]


def test_eval_datasets_are_the_eval_split_and_no_training_row_is_held_out(make_config, data_root):
    train = write_dataset(data_root, "codes", arbitrary_rows(30))
    held_rows = [{"instruction": f"Code word {i}?", "output": "amber basalt cobalt"} for i in range(100, 106)]
    held = write_dataset(data_root, "codes-eval", held_rows)
    training = {"epochs": 1, "max_length": 64, "learning_rate": 5e-3, "eval_fraction": 0.2}  # not used
    events: list[dict] = []
    result = main(make_config(datasets=[train], eval_datasets=[held], training=training), on_event=events.append)
    assert result.status == "succeeded"

    validated = next(e for e in events if e["type"] == "validated")
    started = next(e for e in events if e["type"] == "started")
    assert (started["train_rows"], started["eval_rows"]) == (30, 6)  # all 30 train, the 6 eval
    assert [d["path"] for d in validated["data"]["eval_datasets"]] == [held]
    assert validated["hyperparameters"]["training"]["eval_fraction"] == 0.0
    [evaluated] = [e for e in events if e["type"] == "eval"]
    assert evaluated["eval_loss"] > 0 and result.metrics["eval_loss"] == evaluated["eval_loss"]

    manifest = json.loads((result.export.path / "manifest.json").read_text())
    assert [d["path"] for d in manifest["eval_datasets"]] == [held] and manifest["eval_datasets"][0]["rows"] == 6
    assert [d["path"] for d in manifest["datasets"]] == [train] and manifest["eval_split"]["rows"] == 6
    exported_rows = (result.export.path / "eval.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in exported_rows] == held_rows


def test_settings_that_need_a_held_out_split_are_refused_without_one(make_config, data_root):
    dataset = write_dataset(data_root, "few", arbitrary_rows(10))  # under 20 rows: nothing held out
    for name in ("early_stopping_patience", "eval_generate_rows"):
        with pytest.raises(InvalidArgument, match="held-out") as refused:
            validate_run(make_config(datasets=[dataset], training={name: 2}))
        assert refused.value.extra["field"] == name
    with pytest.raises(InvalidArgument, match="eval_generate_rows") as refused:
        validate_run(make_config(training={"best_metric": "eval_chrf"}))
    assert refused.value.extra["field"] == "best_metric"
    with pytest.raises(InvalidArgument, match="needs a judge") as refused:  # none configured here
        validate_run(make_config(training={"best_metric": "eval_judge_score", "eval_generate_rows": 2}))
    assert refused.value.extra["field"] == "best_metric"


def test_the_judge_grades_the_generated_answers_and_a_failed_grade_is_no_grade(make_config, data_root,
                                                                              monkeypatch):
    from tests.support.fake_openai import FakeOpenAI, Status

    token = "judge-token-never-stored-5c1e"
    with FakeOpenAI(respond=lambda body: "4") as judge:
        judge.script(Status(500))  # the first grading request fails: no grade, not a 1 or a 5
        monkeypatch.setenv("SYNTHTUNE_TRAINER_JUDGE_URL", judge.base_url)
        monkeypatch.setenv("SYNTHTUNE_TRAINER_JUDGE_MODEL", "grader")
        monkeypatch.setenv("SYNTHTUNE_TRAINER_JUDGE_TOKEN", token)
        training = {"epochs": 1, "max_length": 64, "learning_rate": 5e-3, "eval_generate_rows": 3,
                    "eval_max_new_tokens": 8, "best_metric": "eval_judge_score"}
        events: list[dict] = []
        result = main(make_config(training=training), on_event=events.append)
    assert result.status == "succeeded"
    [evaluated] = [e for e in events if e["type"] == "eval"]
    assert evaluated["eval_judge_score"] == 4.0 and evaluated["is_best"] and evaluated["metric"] == "eval_judge_score"
    requests = judge.chat_requests()
    auth = [{k.lower(): v for k, v in r.headers.items()}.get("authorization") for r in requests]
    assert len(requests) == 3 and auth == [f"Bearer {token}"] * 3
    assert evaluated["judge_ungraded"] == 1  # the 500: left out of the mean
    graded = requests[0].body["messages"][-1]["content"]
    assert "Reference answer:" in graded and requests[0].body["model"] == "grader"
    manifest = json.loads((result.export.path / "manifest.json").read_text())
    assert manifest["best_checkpoint"]["metric"] == "eval_judge_score" and manifest["best_checkpoint"]["value"] == 4.0
    assert token not in json.dumps(events)
    assert not [p for p in data_root.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]


def test_report_to_mlflow_lands_params_and_metrics_in_a_local_store(make_config, data_root, monkeypatch):
    from mlflow.tracking import MlflowClient

    secret = "mlflow-token-do-not-store-8f3a"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", secret)  # MLflow's own credential: inherited, never written
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    training = {"epochs": 1, "max_length": 64, "learning_rate": 5e-3, "report_to": "mlflow"}
    events: list[dict] = []
    result = main(make_config(training=training), on_event=events.append)
    assert result.status == "succeeded"

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this reading client; the run sets its own
    client = MlflowClient(tracking_uri=(data_root / "mlruns").as_uri())  # the default: under the data root
    experiment = client.get_experiment_by_name("synthtune")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run-1" and run.info.status == "FINISHED"
    assert float(run.data.params["learning_rate"]) == 5e-3 and run.data.params["num_train_epochs"] == "1.0"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(1, result.metrics["steps"] + 1))
    assert run.data.metrics["eval_loss"] == pytest.approx(result.metrics["eval_loss"])
    # No token anywhere: not in the events, not in any file the run wrote.
    assert secret not in json.dumps(events)
    assert not [p for p in data_root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.parametrize("url, rule", [
    ("http://169.254.169.254/v1", ""),  # cloud metadata: always denied
    ("http://[fd00:ec2::254]/v1", ""),  # AWS metadata over IPv6: always denied
    ("http://10.1.2.3:8000/v1", "10.0.0.0/8"),  # a private range an operator denies
])
def test_a_judge_url_the_outbound_policy_refuses_stops_the_trainer_at_start(url, rule):
    with pytest.raises(SettingsError, match="SYNTHTUNE_TRAINER_JUDGE_URL") as refused:
        load_settings(grpc_token=TEST_GRPC_TOKEN, judge_url=url, judge_model="judge", outbound_deny=rule)
    assert "169.254" in str(refused.value) or "fd00:ec2" in str(refused.value) or rule in str(refused.value)
    load_settings(grpc_token=TEST_GRPC_TOKEN, judge_url="http://127.0.0.1:8000/v1", judge_model="judge",
                  outbound_deny=rule)  # loopback passes
