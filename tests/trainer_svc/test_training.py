"""Training end to end on the tiny models: it learns, it stops, it reports, it cancels, it exports.

THE LEARNING TEST: 100 rows whose answer is always one sentence. After training,
greedy generation from base + exported adapter on 10 instructions never seen in
training must give exactly that sentence and then the end token; the base model
must not give it. Settings (r=16, lr 5e-3, 15 epochs, one packed bin per step)
reached 10/10 on both models for seeds 1, 3, 7 and 42, with every greedy token
ahead of the runner-up by more than 1.2 logits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.procs import REPO
from tests.trainer_svc.conftest import (
    ANSWER,
    HELD_OUT,
    fixed_answer_rows,
    generate,
    run_config,
    write_dataset,
)
from trainer_svc.training import main, validate_run

pytestmark = pytest.mark.slow

LEARN = {"learning_rate": 5e-3, "epochs": 15, "batch_size": 1, "gradient_accumulation_steps": 1}
STEP_FIELDS = {"type", "time", "step", "max_steps", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s",
               "eta_s", "num_tokens", "mean_token_accuracy", "elapsed_s"}


def train(tmp_path_factory, models, model: str):
    data_root = tmp_path_factory.mktemp(model) / "data"
    data_root.mkdir()
    datasets = [write_dataset(data_root, "fixed", fixed_answer_rows(100))]
    config = run_config(data_root, models, model=model, datasets=datasets, lora={"r": 16}, training=LEARN)
    events: list[dict] = []
    started = time.monotonic()
    result = main(config, on_event=events.append)
    seconds = time.monotonic() - started
    print(f"\n{model}: main() took {seconds:.1f}s, train_runtime {result.metrics['train_runtime_s']:.1f}s, "
          f"{result.metrics['tokens_per_s']} tokens/s")
    return data_root, result, events


@pytest.fixture(scope="module")
def phi3_run(tmp_path_factory, tiny_models):
    return train(tmp_path_factory, tiny_models, "tiny-phi3")


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, tiny_models):
    return train(tmp_path_factory, tiny_models, "tiny-llama-plain")


@pytest.mark.parametrize("which", ["phi3_run", "plain_run"])
def test_the_fine_tuned_model_answers_the_sentence_and_stops(request, tiny_models, which):
    data_root, result, _ = request.getfixturevalue(which)
    model = "tiny-phi3" if which == "phi3_run" else "tiny-llama-plain"
    assert set(HELD_OUT).isdisjoint(row["instruction"] for row in fixed_answer_rows(100))
    answers = generate(tiny_models / model, result.export.path, HELD_OUT)
    assert answers == [(ANSWER, True)] * len(HELD_OUT)
    base_answers = generate(tiny_models / model, None, HELD_OUT)
    assert all(text != ANSWER for text, _ in base_answers), base_answers


def test_events_tell_the_whole_run(phi3_run):
    data_root, result, events = phi3_run
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["log", "validated"] and kinds[-2:] == ["exported", "finished"]
    assert all(isinstance(e["time"], float) for e in events)
    json.dumps(events)  # JSON-ready, as the service stores them

    validated = events[kinds.index("validated")]
    assert validated["prompt_format"] == "chat"
    assert validated["data"]["rows"] == 100 and validated["data"]["eval_rows"] == 10
    assert validated["target_modules"] == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]

    started = events[kinds.index("started")]
    assert started["wrapped_modules"] == 8 and started["device"] == "cpu" and started["packing"] is True
    assert 0 < started["trainable_params"] < started["total_params"]

    steps = [e for e in events if e["type"] == "step"]
    assert set(steps[0]) == STEP_FIELDS
    assert [s["step"] for s in steps] == list(range(1, started["max_steps"] + 1))
    assert all(s["max_steps"] == started["max_steps"] for s in steps)
    assert all(s["tokens_per_s"] > 0 and s["grad_norm"] is not None and s["learning_rate"] > 0 for s in steps)
    assert steps[-1]["eta_s"] == 0 and steps[0]["eta_s"] > 0
    assert steps[-1]["loss"] < steps[0]["loss"]

    evals = [e for e in events if e["type"] == "eval"]
    assert [round(e["epoch"]) for e in evals] == list(range(1, 16))  # one per epoch
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]

    exported = events[kinds.index("exported")]
    assert exported["path"] == "adapters/tiny-phi3-lora-v1" == result.export.relative_path
    finished = events[-1]
    assert finished["status"] == "succeeded" == result.status
    assert finished["metrics"]["eval_loss"] == evals[-1]["eval_loss"]
    assert finished["metrics"]["steps"] == started["max_steps"]
    assert not (data_root / "runs" / "run-1" / "scratch").exists()


def test_the_export_records_the_run(phi3_run, tiny_models):
    data_root, result, _ = phi3_run
    folder = data_root / "adapters" / "tiny-phi3-lora-v1"
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny-phi3"  # the canonical id, not the folder trained from
    assert config["r"] == 16 and config["lora_alpha"] == 32
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run_id"] == "run-1" and manifest["prompt_format"] == "chat"
    dataset = manifest["datasets"][0]
    assert dataset["path"] == "datasets/fixed.jsonl" and dataset["rows"] == 100
    import hashlib

    assert dataset["sha256"] == hashlib.sha256((data_root / "datasets" / "fixed.jsonl").read_bytes()).hexdigest()
    hyper = manifest["hyperparameters"]
    assert hyper["training"]["learning_rate"] == 5e-3 and hyper["training"]["packing_strategy"] == "bfd"
    assert hyper["lora"]["wrapped_modules"] == 8 and hyper["device"]["kind"] == "cpu"
    assert manifest["metrics"]["train_loss"] == result.metrics["train_loss"]
    assert manifest["weights_sha256"] == hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()
    # The held-out rows, as read from the dataset, ride along for batch compare.
    held_out = [json.loads(line) for line in (folder / "eval.jsonl").read_text().splitlines()]
    assert manifest["eval_split"]["rows"] == len(held_out) == 10 and manifest["eval_split"]["file"] == "eval.jsonl"
    assert all(row in fixed_answer_rows(100) for row in held_out)


def test_cancel_stops_within_one_step_and_exports_nothing(make_config, data_root):
    rows = [{"instruction": f"Question {i}?", "output": "Answer " * (i % 7 + 1)} for i in range(60)]
    config = make_config(model="tiny-llama", datasets=[write_dataset(data_root, "d", rows)],
                         training={"epochs": 3, "packing": False, "batch_size": 2})
    events: list[dict] = []
    steps = lambda: sum(e["type"] == "step" for e in events)  # noqa: E731
    result = main(config, on_event=events.append, should_stop=lambda: steps() >= 3)
    kinds = [e["type"] for e in events]
    assert result.status == "cancelled" and result.export is None
    # Asked after step 3 was logged; step 4 stops after its first micro-batch, before its optimizer step.
    assert steps() == 3 and result.metrics["steps"] == 3
    assert "eval" not in kinds  # the per-epoch eval is skipped too
    assert kinds[-2:] == ["cancelled", "finished"] and events[-1]["status"] == "cancelled"
    started = events[kinds.index("started")]
    assert events[-2]["step"] == 3 and events[-2]["max_steps"] == started["max_steps"] > 3
    assert not (data_root / "adapters").exists() or not any((data_root / "adapters").iterdir())
    assert not (data_root / "runs" / "run-1" / "scratch").exists()


def test_validation_loads_no_weights(make_config, monkeypatch):
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("validate_run loaded a model")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    plan = validate_run(make_config(lora={"target_modules": "all-linear"}))
    assert plan.report.rows == 100 and plan.targets.expected_count == 8
    assert plan.to_dict()["hyperparameters"]["lora"]["wrapped_modules"] == 8
    with pytest.raises(Exception, match="only 4 of the 8"):
        validate_run(make_config(lora={"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                          "up_proj", "down_proj"]}))


def test_validation_holds_datasets_to_the_versions_named(make_config, data_root):
    import hashlib

    from synthtune.errors import FailedPrecondition, InvalidArgument

    path = "datasets/fixed.jsonl"
    config = make_config()  # writes the file
    digest = hashlib.sha256((data_root / path).read_bytes()).hexdigest()
    ref = {"path": path, "name": "fixed.v2", "version": 2, "sha256": digest}
    plan = validate_run(make_config(dataset_refs=[ref]))
    assert plan.to_dict()["data"]["datasets"][0] | ref == plan.to_dict()["data"]["datasets"][0]
    with pytest.raises(FailedPrecondition, match="fixed.v2' version 2 .* has changed") as changed:
        validate_run(make_config(dataset_refs=[{**ref, "sha256": "0" * 64}]))
    assert changed.value.extra["field"] == "dataset_refs"
    with pytest.raises(InvalidArgument, match="same paths"):
        validate_run(make_config(dataset_refs=[{**ref, "path": "datasets/other.jsonl"}]))
    assert config.dataset_refs == []  # paths alone still work (old requests)


def test_cli_cancels_on_sigterm(make_config, data_root, tmp_path):
    rows = [{"instruction": f"Question {i}?", "output": "Answer " * (i % 7 + 1)} for i in range(200)]
    config = make_config(model="tiny-llama", datasets=[write_dataset(data_root, "d", rows)],
                         training={"epochs": 5, "packing": False, "batch_size": 1, "gradient_accumulation_steps": 1})
    config_path = tmp_path / "run.json"
    config_path.write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    stderr = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "trainer_svc.training", "--config", str(config_path)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    events = []
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["type"] == "step" and events[-1]["step"] == 2:
                proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 3, (tmp_path / "stderr.log").read_text()[-3000:]
    finally:
        stderr.close()
        if proc.poll() is None:
            proc.kill()
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps[-1] <= 3 and events[-1] == {**events[-1], "type": "finished", "status": "cancelled"}


def test_cli_reports_bad_input_as_json(make_config, tmp_path):
    config = make_config(training={"learning_rate": -1})
    config_path = tmp_path / "run.json"
    config_path.write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "trainer_svc.training", "--config", str(config_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    error = json.loads(done.stderr.strip().splitlines()[-1])
    assert error["code"] == "INVALID_ARGUMENT" and error["extra"]["field"] == "learning_rate"
