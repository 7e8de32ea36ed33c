"""Runs and adapters REST API: auth, bad input (ours and the trainer's) as 400 naming the
field, trainer down as 503, and end to end REST -> gRPC -> child process -> export -> DB."""

from __future__ import annotations

import hashlib
import json

import pytest

from control_plane.datasets import services as dataset_services
from control_plane.datasets import versions
from control_plane.datasets.models import Dataset
from control_plane.runs.models import Adapter, Run, RunEvent
from tests.control_plane.factories import DatasetFactory
from tests.control_plane.helpers import assert_error_body, jsonl, wait_for
from tests.control_plane.runs.factories import AdapterFactory, RunEventFactory, RunFactory
from tests.control_plane.runs.helpers import (
    ADAPTERS,
    RUNS,
    follow_to_end,
    make_dataset,
    run_body,
    service_state,
    training_rows,
    wait_for_service_step,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", RUNS),
        ("post", RUNS),
        ("get", f"{RUNS}r/"),
        ("post", f"{RUNS}r/cancel/"),
        ("post", f"{RUNS}r/resume/"),
        ("get", f"{RUNS}r/events/"),
        ("get", f"{RUNS}r/events/stream/"),
        ("get", ADAPTERS),
        ("get", f"{ADAPTERS}a/"),
        ("get", f"{ADAPTERS}a/manifest/"),
    ],
)
def test_anonymous_calls_get_401_in_the_error_body(anonymous, method, url):
    assert_error_body(getattr(anonymous, method)(url), 401, "UNAUTHENTICATED")


def test_unknown_runs_and_adapters_are_404(api):
    assert "nope" in assert_error_body(api.get(f"{RUNS}nope/"), 404, "NOT_FOUND")["message"]
    assert_error_body(api.get(f"{RUNS}nope/events/"), 404, "NOT_FOUND")
    assert_error_body(api.post(f"{RUNS}nope/cancel/"), 404, "NOT_FOUND")
    assert_error_body(api.post(f"{RUNS}nope/resume/"), 404, "NOT_FOUND")
    assert_error_body(api.get(f"{ADAPTERS}nope/"), 404, "NOT_FOUND")
    assert_error_body(api.get(f"{ADAPTERS}nope/manifest/"), 404, "NOT_FOUND")


# --- bad input the control plane sees: 400 naming the field, nothing written, no trainer needed ---


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"datasets": []}, "datasets"),
        ({"datasets": ["../colours"]}, "datasets"),
        ({"datasets": "colours"}, "datasets"),
        ({"base_model": "../../etc/passwd"}, "base_model"),
        ({"adapter_name": "../../escape"}, "adapter_name"),
        ({"hyperparameters": {"learning_rate": 0}}, "hyperparameters.learning_rate"),
        ({"hyperparameters": {"learning_rate": -0.001}}, "hyperparameters.learning_rate"),
        ({"hyperparameters": {"epochs": 1e6}}, "hyperparameters.epochs"),
        ({"hyperparameters": {"epochs": 0}}, "hyperparameters.epochs"),
        ({"hyperparameters": {"batch_size": 0}}, "hyperparameters.batch_size"),
        ({"hyperparameters": {"lora_dropout": 1}}, "hyperparameters.lora_dropout"),
        ({"hyperparameters": {"max_length": 4}}, "hyperparameters.max_length"),
        ({"hyperparameters": {"device": "tpu"}}, "hyperparameters.device"),
        ({"hyperparameters": {"target_modules": "qkv_proj"}}, "hyperparameters.target_modules"),
        ({"hyperparameters": {"learning_rte": 0.001}}, "hyperparameters.learning_rte"),
        ({"hyperparameters": {"epochs": "many"}}, "hyperparameters.epochs"),
        ({"hyperparameters": {"processes_per_node": 0}}, "hyperparameters.processes_per_node"),
        ({"hyperparameters": {"num_nodes": 65}}, "hyperparameters.num_nodes"),
        ({"hyperparameters": {"keep_checkpoints": "maybe"}}, "hyperparameters.keep_checkpoints"),
        ({"eval_datasets": ["../colours"]}, "eval_datasets"),
        ({"eval_datasets": ["colours"]}, "eval_datasets"),  # also trained on
        ({"eval_datasets": "colours"}, "eval_datasets"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(api, overrides, field):
    make_dataset()
    body = assert_error_body(api.post(RUNS, run_body(**overrides), format="json"), 400, "INVALID_ARGUMENT")
    assert body["extra"]["field"] == field, body
    assert not Run.objects.exists()


@pytest.mark.parametrize("field", ["datasets", "eval_datasets"])
def test_an_unknown_dataset_is_404_naming_the_field_and_writes_nothing(api, field):
    make_dataset()
    body = assert_error_body(api.post(RUNS, run_body(**{field: ["missing"]}), format="json"), 404, "NOT_FOUND")
    assert body["extra"]["field"] == field and "missing" in body["message"], body
    assert not Run.objects.exists()


def test_empty_and_unready_datasets_are_refused(api, data_root):
    (data_root / "datasets").mkdir()
    (data_root / "datasets" / "empty.jsonl").write_bytes(b"")
    Dataset.objects.create(
        name="empty", path="datasets/empty.jsonl", source="uploaded", status="ready", rows=0
    )
    body = assert_error_body(
        api.post(RUNS, run_body(datasets=["empty"]), format="json"), 400, "INVALID_ARGUMENT"
    )
    assert body["extra"]["field"] == "datasets" and "empty" in body["message"]
    DatasetFactory(name="half", status=Dataset.Status.GENERATING)
    body = assert_error_body(
        api.post(RUNS, run_body(datasets=["half"]), format="json"), 400, "INVALID_ARGUMENT"
    )
    assert "generating" in body["message"]
    Dataset.objects.create(name="gone", path="datasets/gone.jsonl", source="uploaded", status="ready", rows=3)
    body = assert_error_body(
        api.post(RUNS, run_body(datasets=["gone"]), format="json"), 400, "INVALID_ARGUMENT"
    )
    assert "missing from the data root" in body["message"]
    assert not Run.objects.exists()


def test_trainer_down_is_503_naming_the_address_and_writes_nothing(api, cp_settings):
    make_dataset()
    body = assert_error_body(api.post(RUNS, run_body(), format="json"), 503, "UNAVAILABLE")
    assert cp_settings.SYNTHTUNE_TRAINER_ADDR in body["message"]
    assert body["extra"] == {"service": "trainer", "address": cp_settings.SYNTHTUNE_TRAINER_ADDR}
    assert not Run.objects.exists()
    run = RunFactory()
    body = assert_error_body(api.post(f"{RUNS}{run.run_id}/cancel/"), 503, "UNAVAILABLE")
    assert cp_settings.SYNTHTUNE_TRAINER_ADDR in body["message"]


def test_cancel_of_a_finished_run_is_refused(api):
    run = RunFactory(state=Run.State.SUCCEEDED)
    assert_error_body(api.post(f"{RUNS}{run.run_id}/cancel/"), 400, "FAILED_PRECONDITION")


# --- reads from stored rows ------------------------------------------------------------------


def test_list_filters_and_retrieve(api, user):
    colours = make_dataset()
    running = RunFactory(state=Run.State.RUNNING, owner=user, step=5, max_steps=10)
    running.datasets.set([colours])
    RunFactory(state=Run.State.SUCCEEDED, base_model="tiny-llama")
    assert [r["run_id"] for r in api.get(RUNS, {"state": "running"}).json()["results"]] == [running.run_id]
    assert [r["base_model"] for r in api.get(RUNS, {"base_model": "tiny-llama"}).json()["results"]] == [
        "tiny-llama"
    ]
    assert [r["run_id"] for r in api.get(RUNS, {"dataset": "colours"}).json()["results"]] == [running.run_id]
    assert [r["run_id"] for r in api.get(RUNS, {"owner": user.username}).json()["results"]] == [
        running.run_id
    ]
    assert api.get(RUNS).json()["count"] == 2
    assert_error_body(api.get(RUNS, {"state": "sleeping"}), 400, "INVALID_ARGUMENT")
    detail = api.get(f"{RUNS}{running.run_id}/").json()
    assert detail["datasets"] == ["colours"] and detail["percent"] == 50 and detail["adapter"] is None
    assert detail["owner"] == user.username
    # Not resolved by the trainer yet: one process, effective batch unknown; never resumed.
    assert (detail["world_size"], detail["effective_batch_size"]) == (1, None)
    assert (detail["resumed_from_step"], detail["resumes"]) == (0, 0)


def test_events_json_in_seq_order_with_after_seq_and_type_filters(api):
    run = RunFactory()
    for seq in range(1, 5):
        RunEventFactory(run=run, seq=seq)
    RunEventFactory(run=run, seq=5, type="eval", payload={"step": 4, "epoch": 1.0, "eval_loss": 2.5})
    body = api.get(f"{RUNS}{run.run_id}/events/").json()
    assert body["run_id"] == run.run_id and body["finished"] is False and body["state"] == "running"
    assert [e["seq"] for e in body["events"]] == [1, 2, 3, 4, 5]
    assert body["events"][0]["payload"]["loss"] == pytest.approx(2.9)
    later = api.get(f"{RUNS}{run.run_id}/events/", {"after_seq": 3}).json()["events"]
    assert [e["seq"] for e in later] == [4, 5]
    evals = api.get(f"{RUNS}{run.run_id}/events/", {"type": "eval"}).json()["events"]
    assert [e["payload"]["eval_loss"] for e in evals] == [2.5]
    assert_error_body(api.get(f"{RUNS}{run.run_id}/events/", {"after_seq": -1}), 400, "INVALID_ARGUMENT")
    assert_error_body(api.get(f"{RUNS}{run.run_id}/events/", {"type": "nope"}), 400, "INVALID_ARGUMENT")


def test_adapters_list_retrieve_and_manifest_download(api, data_root):
    adapter = AdapterFactory(base_model="tiny-llama")
    AdapterFactory(base_model="tiny-phi3")
    manifest = {"name": adapter.name, "run_id": adapter.run.run_id, "weights_sha256": adapter.weights_sha256}
    folder = data_root / adapter.path
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    listed = api.get(ADAPTERS, {"base_model": "tiny-llama"}).json()["results"]
    assert [a["name"] for a in listed] == [adapter.name] and "manifest" not in listed[0]
    assert [a["name"] for a in api.get(ADAPTERS, {"run": adapter.run.run_id}).json()["results"]] == [
        adapter.name
    ]
    detail = api.get(f"{ADAPTERS}{adapter.name}/").json()
    assert detail["run"] == adapter.run.run_id and detail["manifest"]["name"] == adapter.name
    response = api.get(f"{ADAPTERS}{adapter.name}/manifest/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="{adapter.name}.manifest.json"'
    assert json.loads(response.content) == manifest
    (folder / "manifest.json").unlink()
    assert (
        "missing"
        in assert_error_body(api.get(f"{ADAPTERS}{adapter.name}/manifest/"), 404, "NOT_FOUND")["message"]
    )


def test_openapi_schema_lists_the_runs_and_adapters_routes(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    paths = json.loads(schema.content)["paths"]
    assert {
        "/api/v1/runs/",
        "/api/v1/runs/{run_id}/",
        "/api/v1/runs/{run_id}/cancel/",
        "/api/v1/runs/{run_id}/events/",
        "/api/v1/runs/{run_id}/events/stream/",
        "/api/v1/adapters/",
        "/api/v1/adapters/{name}/",
        "/api/v1/adapters/{name}/manifest/",
    } <= set(paths)
    create = paths["/api/v1/runs/"]["post"]
    assert create["operationId"] == "runs_create" and {"202", "400", "503"} <= set(create["responses"])


# --- against the real trainer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hyperparameters", "field", "words"),
    [
        ({"max_length": 4096}, "hyperparameters.max_length", "2048"),  # the tiny models' context length
        ({"target_modules": ["no_such_layer"]}, "hyperparameters.target_modules", "no_such_layer"),
        # Llama's names on Phi-3: peft would wrap only o_proj and down_proj.
        (
            {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
            "hyperparameters.target_modules",
            "qkv_proj",
        ),
    ],
)
def test_the_trainers_validation_is_400_with_api_field_names(api, trainer, hyperparameters, field, words):
    make_dataset()
    body = run_body(hyperparameters={"epochs": 1, **hyperparameters})
    error = assert_error_body(api.post(RUNS, body, format="json"), 400, "INVALID_ARGUMENT")
    assert error["extra"]["field"] == field, error
    assert words in error["message"], error
    assert error["extra"]["service"] == "trainer"
    assert not Run.objects.exists()


def test_an_unknown_base_model_or_a_changed_dataset_file_is_refused_naming_the_field(api, trainer, data_root):
    dataset = make_dataset()
    error = assert_error_body(
        api.post(RUNS, run_body(base_model="no-such-model"), format="json"), 400, "INVALID_ARGUMENT"
    )
    assert error["extra"]["field"] == "base_model" and "no-such-model" in error["message"]
    # A file that is no longer the version it was recorded as (one trainer start for both checks).
    with (data_root / dataset.path).open("a") as handle:
        handle.write(json.dumps(training_rows(1)[0]) + "\n")
    error = assert_error_body(api.post(RUNS, run_body(), format="json"), 400, "FAILED_PRECONDITION")
    assert error["extra"]["field"] == "datasets" and "'colours' version 1" in error["message"]
    assert dataset.sha256 in error["message"]
    assert not Run.objects.exists()


def test_eval_datasets_are_the_runs_eval_split_and_a_changed_one_is_refused(api, trainer, data_root):
    make_dataset()
    rows = [{"instruction": f"Which colour comes after number {n}?", "output": "Teal."} for n in range(6)]
    held = dataset_services.dataset_upload(owner=None, name="colours-eval", data=jsonl(rows))
    response = api.post(RUNS, run_body(eval_datasets=["colours-eval"]), format="json")
    assert response.status_code == 202, response.json()
    created = response.json()
    assert created["datasets"] == ["colours"] and created["eval_datasets"] == ["colours-eval"]
    assert (created["train_rows"], created["eval_rows"]) == (24, 6)  # nothing held out of colours
    [report] = created["eval_dataset_reports"]
    assert (report["name"], report["version"], report["sha256"], report["rows"]) == (
        "colours-eval",
        held.version,
        held.sha256,
        6,
    )
    assert api.get(f"{RUNS}{created['run_id']}/").json()["eval_datasets"] == ["colours-eval"]
    assert list(held.eval_runs.values_list("run_id", flat=True)) == [created["run_id"]]
    # What the run's training process reads (a child, a TrainJob's nodes, a resume): its config.
    config = json.loads((data_root / "runs" / created["run_id"] / "config.json").read_text())
    assert config["eval_datasets"] == [held.path] and config["eval_dataset_refs"][0]["sha256"] == held.sha256
    api.post(f"{RUNS}{created['run_id']}/cancel/")

    with (data_root / held.path).open("a") as handle:  # no longer the version it was recorded as
        handle.write(json.dumps(rows[0]) + "\n")
    error = assert_error_body(
        api.post(RUNS, run_body(eval_datasets=["colours-eval"]), format="json"), 400, "FAILED_PRECONDITION"
    )
    assert error["extra"]["field"] == "eval_datasets" and "'colours-eval' version 1" in error["message"]
    assert Run.objects.count() == 1


def test_several_processes_on_a_one_process_trainer_is_400_naming_the_field(api, trainer):
    make_dataset()
    body = run_body(hyperparameters={"epochs": 1, "processes_per_node": 2})
    error = assert_error_body(api.post(RUNS, body, format="json"), 400, "INVALID_ARGUMENT")
    assert error["extra"]["field"] == "hyperparameters.processes_per_node"
    assert "SYNTHTUNE_TRAINER_LAUNCHER=torchrun" in error["message"]
    assert not Run.objects.exists()


@pytest.mark.slow
@pytest.mark.parametrize("base_model", ["tiny-phi3", "tiny-llama"])
def test_fine_tune_end_to_end(api, trainer, data_root, base_model, user):
    """REST -> gRPC -> trainer -> child process -> export -> worker (in-process) -> DB.
    It trains on a version (colours = colours-raw's v2), which the run and the manifest name."""
    raw = make_dataset("colours-raw", rows=25)
    dataset = versions.dataset_edit(owner=user, parent=raw, name="colours", data=jsonl(training_rows(24)))
    body = run_body(base_model=base_model, adapter_name=f"{base_model}-colours")
    response = api.post(RUNS, body, format="json", HTTP_X_REQUEST_ID=f"rid-run-{base_model}")
    assert response.status_code == 202, response.json()
    created = response.json()
    run_id = created["run_id"]
    assert created["state"] in ("validating", "queued", "running") and created["datasets"] == ["colours"]
    assert created["hyperparameters"] == {"epochs": 1.0, "max_length": 128, "learning_rate": 5e-3}
    assert created["owner"] == user.username

    run = follow_to_end(run_id)
    assert run.state == "succeeded", (run.error, trainer.log_text()[-3000:])
    assert run.step == run.max_steps > 0 and run.finished_at and run.started_at
    assert run.config and run.dataset_reports[0]["path"] == dataset.path
    assert run.dataset_reports[0]["sha256"] == dataset.sha256 and run.dataset_reports[0]["rows"] == 24
    assert (run.dataset_reports[0]["name"], run.dataset_reports[0]["version"]) == ("colours", 2)

    # The events: every seq once, in order; the history of the loss curve.
    events = api.get(f"{RUNS}{run_id}/events/").json()
    assert events["finished"] is True and events["state"] == "succeeded"
    seqs = [event["seq"] for event in events["events"]]
    assert (
        seqs
        == list(range(1, len(seqs) + 1))
        == list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    )
    types = [event["type"] for event in events["events"]]
    states = [e["payload"]["state"] for e in events["events"] if e["type"] == "state_changed"]
    assert states[-1] == "succeeded" and "running" in states
    steps = [e["payload"] for e in events["events"] if e["type"] == "step"]
    assert [s["step"] for s in steps] == list(range(1, run.max_steps + 1))
    assert all(s["loss"] > 0 and s["max_steps"] == run.max_steps for s in steps)
    assert types.index("exported") < len(types) - 1  # exported, then the terminal state
    evals = [e["payload"] for e in events["events"] if e["type"] == "eval"]
    assert run.eval_rows > 0 and run.train_rows + run.eval_rows == 24  # 10% held out by default
    assert len(evals) == 1 and evals[0]["eval_loss"] > 0 and run.metrics["eval_loss"] == evals[0]["eval_loss"]
    # The eval event whole: token accuracy, the metric that picks the best checkpoint, and that it is.
    assert evals[0]["metric"] == "eval_loss" and evals[0]["is_best"] is True
    assert 0 <= evals[0]["eval_mean_token_accuracy"] <= 1 and evals[0]["max_steps"] == run.max_steps
    assert "eval_exact_match" not in evals[0]  # no generation evals asked for: absent, not 0

    # The adapter: recorded from the manifest on disk, and served by the API.
    adapter = Adapter.objects.get(run=run)
    folder = data_root / adapter.path
    assert adapter.name.startswith(f"{base_model}-colours") and adapter.path == f"adapters/{adapter.name}"
    for name in ("adapter_config.json", "adapter_model.safetensors", "manifest.json"):
        assert (folder / name).is_file(), name
    assert (
        adapter.weights_sha256
        == hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert adapter.manifest == manifest and manifest["run_id"] == run_id
    # The manifest records the evals, and that the exported weights are the best (only) eval's step.
    assert [e["eval_loss"] for e in manifest["evals"]] == [evals[0]["eval_loss"]]
    assert manifest["best_checkpoint"]["exported_step"] == evals[0]["step"] == run.max_steps
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == base_model
    assert {k: manifest["datasets"][0][k] for k in ("name", "version", "sha256")} == {
        "name": "colours",
        "version": 2,
        "sha256": hashlib.sha256((data_root / dataset.path).read_bytes()).hexdigest(),
    }
    assert manifest["datasets"][0]["sha256"] == dataset.sha256
    assert adapter.base_model == base_model and adapter.prompt_format == run.prompt_format != ""

    detail = api.get(f"{RUNS}{run_id}/").json()
    assert detail["adapter"] == adapter.name and detail["percent"] == 100
    assert detail["metrics"]["train_loss"] > 0, detail["metrics"]  # final metrics from the manifest / GetRun
    listed = api.get(ADAPTERS, {"run": run_id}).json()["results"]
    assert [a["name"] for a in listed] == [adapter.name]
    downloaded = api.get(f"{ADAPTERS}{adapter.name}/manifest/")
    assert json.loads(downloaded.content) == manifest
    assert api.get(RUNS, {"state": "succeeded"}).json()["results"][0]["run_id"] == run_id
    assert f"rid-run-{base_model}" in trainer.log_text()  # the request id travelled over gRPC
    assert_error_body(api.post(f"{RUNS}{run_id}/cancel/"), 400, "FAILED_PRECONDITION")


@pytest.mark.slow
def test_cancel_mid_run_stops_it_and_exports_nothing(api, trainer, data_root):
    make_dataset()
    # Long enough to be caught mid-run: one row per step, many epochs.
    hyperparameters = {"epochs": 50, "max_length": 128, "packing": False, "batch_size": 1,
                       "gradient_accumulation_steps": 1}  # fmt: skip
    run_id = api.post(RUNS, run_body(hyperparameters=hyperparameters), format="json").json()["run_id"]
    wait_for_service_step(run_id)
    response = api.post(f"{RUNS}{run_id}/cancel/")
    assert response.status_code == 202, response.json()

    run = follow_to_end(run_id)
    assert run.state == "cancelled", run.error
    assert 0 < run.step < run.max_steps
    assert not Adapter.objects.exists()
    assert not (data_root / "adapters").exists() or not [
        p for p in (data_root / "adapters").iterdir() if not p.name.startswith(".")
    ]
    assert RunEvent.objects.filter(run=run, type="exported").count() == 0
    assert wait_for(lambda: service_state(run_id) == "cancelled", what="the trainer's state")


@pytest.mark.parametrize("state", ["queued", "running", "succeeded", "cancelled"])
def test_only_a_failed_run_can_be_resumed(api, state):
    run = RunFactory(state=state)  # refused before the trainer is asked (none runs here)
    error = assert_error_body(api.post(f"{RUNS}{run.run_id}/resume/"), 400, "FAILED_PRECONDITION")
    assert "only a failed run" in error["message"]


def test_resume_with_the_trainer_down_is_503_and_changes_nothing(api):
    run = RunFactory(state="failed", error="the training process was killed by SIGKILL")
    assert_error_body(api.post(f"{RUNS}{run.run_id}/resume/"), 503, "UNAVAILABLE")
    run.refresh_from_db()
    assert run.state == "failed" and run.error


@pytest.mark.slow
def test_a_killed_run_fails_then_resumes_by_request_and_succeeds(api, trainer, data_root):
    import os
    import signal

    make_dataset()
    hyperparameters = {"epochs": 20, "max_length": 128, "packing": False, "batch_size": 1,
                       "gradient_accumulation_steps": 1, "keep_checkpoints": True}  # fmt: skip
    run_id = api.post(RUNS, run_body(hyperparameters=hyperparameters), format="json").json()["run_id"]
    wait_for_service_step(run_id)
    # Killed before its first checkpoint (step 50): no automatic resume, the run fails.
    os.kill(json.loads((data_root / "runs" / run_id / "run.json").read_text())["pid"], signal.SIGKILL)
    assert follow_to_end(run_id).state == "failed"

    response = api.post(f"{RUNS}{run_id}/resume/")
    assert response.status_code == 202, response.json()
    assert response.json()["state"] == "queued" and response.json()["error"] == ""
    run = follow_to_end(run_id)
    assert run.state == "succeeded" and run.step == run.max_steps and Adapter.objects.filter(run=run).exists()
    messages = [e.payload.get("message", "") for e in RunEvent.objects.filter(run=run, type="log")]
    assert "resume requested: it goes on from the start (it has no checkpoint)" in messages
    detail = api.get(f"{RUNS}{run_id}/").json()
    assert (detail["resumed_from_step"], detail["world_size"], detail["effective_batch_size"]) == (0, 1, 1)
    # Asked to keep its checkpoints: one per epoch but the last, the newest two kept.
    assert run.config["hyperparameters"]["training"]["keep_checkpoints"] is True
    assert len(list((data_root / "runs" / run_id / "checkpoints").glob("checkpoint-*"))) == 2
