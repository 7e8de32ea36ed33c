"""Every old route's answer has the old app's keys and value types (tests/control_plane/legacy/
old_app.py cites its source), in-process: the answers built from the database, and every
failure envelope (bad fields: 400; a service down: 502). The answers that need the services,
vLLM and training (generate, finetune, hotload, unload, compare) are checked with the same
shapes against the running stack in test_routes."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from control_plane.datasets.models import Dataset
from control_plane.legacy import translate
from control_plane.runs.models import Run
from tests.control_plane.deployments.factories import DeploymentFactory
from tests.control_plane.factories import DatasetFactory, GenerationJobFactory
from tests.control_plane.legacy import old_app
from tests.control_plane.legacy.old_app import assert_error, assert_shape
from tests.control_plane.runs.factories import AdapterFactory, RunFactory
from tests.support.procs import free_port

pytestmark = pytest.mark.django_db

VLLM = "http://127.0.0.1:9"  # a target nothing serves: the services are down in these tests


@pytest.fixture(autouse=True)
def services_down(cp_settings):
    """datagen and the serving proxy are already down (cp_settings); so is the trainer."""
    cp_settings.SYNTHTUNE_TRAINER_ADDR = f"127.0.0.1:{free_port()}"
    return cp_settings


def post(api, path: str, body) -> object:
    return api.post(path, body, format="json")


# --- answers built from the database ----------------------------------------------------------


def test_healthz_is_the_old_text():
    # app.py:67-69: the text "ok", 200.
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"


def test_list_datasets_has_the_old_keys_and_numbers(api):
    DatasetFactory(name="alpha", status=Dataset.Status.READY, rows=3, size_bytes=2048)
    DatasetFactory(name="beta", status=Dataset.Status.READY, rows=0, size_bytes=0)
    DatasetFactory(name="gamma", status=Dataset.Status.GENERATING)  # not a file the old app could list
    body = api.get("/list_datasets").json()
    assert_shape(body, old_app.LIST_DATASETS, status="success")
    assert [f["name"] for f in body["files"]] == ["alpha.jsonl", "beta.jsonl"]
    for entry in body["files"]:
        assert_shape(entry, old_app.DATASET_FILE)
    assert body["files"][0] == {"name": "alpha.jsonl", "size_bytes": 2048, "num_rows": 3}


def test_list_exported_adapters_has_the_old_keys(api, data_root):
    AdapterFactory(name="support-v2")
    AdapterFactory(name="support-v1")
    body = api.get("/list_exported_adapters").json()
    assert_shape(body, old_app.LIST_EXPORTED_ADAPTERS, status="success")
    for entry in body["adapters"]:
        assert_shape(entry, old_app.EXPORTED_ADAPTER)
    assert body["adapters"][0] == {"name": "support-v1", "path": str(data_root.resolve() / "adapters" / "support-v1")}


@pytest.mark.parametrize(
    ("state", "old_status"),
    [
        (Run.State.VALIDATING, "queued"),
        (Run.State.QUEUED, "queued"),
        (Run.State.RUNNING, "running"),
        (Run.State.SUCCEEDED, "done"),
        (Run.State.FAILED, "error"),
        (Run.State.CANCELLED, "error"),
    ],
)
def test_finetune_status_has_the_old_keys_and_types_in_every_state(api, state, old_status):
    run = RunFactory(state=state, step=3, max_steps=12, metrics={"loss": 1.5})
    if state == Run.State.FAILED:
        run.error = "CUDA out of memory"
        run.save()
    if state == Run.State.SUCCEEDED:
        AdapterFactory(run=run, name="done-v1")
    body = api.get("/finetune_status", {"job_id": run.run_id}).json()
    assert_shape(body, old_app.FINETUNE_STATUS, extra=old_app.EXTRA_FINETUNE_STATUS, status=old_status)
    assert body["status"] in old_app.FINETUNE_STATUSES and body["base_model_id"] == "tiny-phi3"
    # adapter_dir and error are null until there is one, as the old job's Optional fields.
    assert (body["adapter_dir"] is None) == (state != Run.State.SUCCEEDED)
    assert (body["error"] is None) == (state not in (Run.State.FAILED, Run.State.CANCELLED))


def test_finetune_status_unknown_and_missing_job(api):
    unknown = api.get("/finetune_status", {"job_id": "job-2025-01-01T00-00-00Z"})
    assert unknown.status_code == 200  # fine_tune.py:284 through app.py:226
    assert_shape(unknown.json(), old_app.FINETUNE_NOT_FOUND, status="not_found")
    assert_error(api.get("/finetune_status"), 400, "job_id query parameter is required")  # app.py:225
    assert_error(api.get("/finetune_status", {"job_id": "job\x00"}), 400, "NUL")  # the schema's pattern


def test_generate_data_meta_has_the_old_keys_as_strings():
    """The `meta` of a finished job (the view adds `model`); its whole answer is checked in test_routes."""
    dataset = DatasetFactory(name="synthetic_x", status=Dataset.Status.READY, rows=5, size_bytes=321, sha256="c" * 64)
    job = GenerationJobFactory(dataset=dataset, target_rows=5, dropped=1, failed=0)
    meta = {**translate.generation_meta(job), "model": "teacher"}
    assert_shape(meta, old_app.GENERATE_DATA_META, extra=old_app.EXTRA_GENERATE_DATA_META)
    assert meta["file_name"] == "synthetic_x.jsonl" and meta["num_rows"] == "5"  # str(len(rows)), synthetic_data.py:101
    assert meta["file_path"].endswith("/datasets/synthetic_x.jsonl") and meta["rows_written"] == 5


def test_event_log_answers_ok_to_any_body(api):
    # app.py:73 reads the body with get_json(silent=True): none, or not JSON, is still {"status": "ok"}.
    for response in (
        post(api, "/event_log", {"event": "compare_clicked", "payload": {"url": VLLM}}),
        post(api, "/event_log", {"event": "x" * 1000}),
        api.post("/event_log", "not json{", content_type="application/json"),
        api.post("/event_log", json.dumps(None), content_type="application/json"),
        post(api, "/event_log", [None, None]),  # JSON, not an object: still no event (the schema says any JSON)
        api.post("/event_log"),
    ):
        assert response.status_code == 200
        assert_shape(response.json(), old_app.EVENT_LOG, status="ok")


# --- failure envelopes: bad fields are 400, a service down is 502 ---------------------------------


def test_generate_data_failures(api):
    good = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "bearer_token": "t", "num_samples": 2}
    assert_error(post(api, "/generate_data", {**good, "base_url": ""}), 400, "Base URL is required")  # app.py:165
    assert_error(post(api, "/generate_data", {**good, "model": ""}), 400, "Model name is required")  # app.py:167
    assert_error(post(api, "/generate_data", {**good, "bearer_token": ""}), 400, "Bearer token is required")  # :169
    assert_error(post(api, "/generate_data", good), 502)  # app.py:183: it failed further on (datagen is down)


def test_finetune_failures(api):
    rows = [{"instruction": f"Question {i}?", "output": f"Answer {i}."} for i in range(4)]
    assert post(api, "/api/v1/datasets/", {"name": "ready", "rows": rows}).status_code == 201
    assert_error(post(api, "/finetune", {}), 400, "selected_files must be a non-empty list")  # app.py:199
    assert_error(post(api, "/finetune", {"selected_files": ["nope.jsonl"]}), 400,
                 "File not found or invalid: nope.jsonl")  # app.py:206
    assert_error(post(api, "/finetune", {"selected_files": ["ready.jsonl"]}), 502)  # the trainer is down


def test_hotload_and_unload_failures(api):
    adapter = AdapterFactory(name="support-v1")
    assert_error(post(api, "/hotload_adapter", {"exported_adapter": adapter.name}), 400,
                 "vllm_url and exported_adapter are required")  # app.py:250
    assert_error(post(api, "/hotload_adapter", {"vllm_url": VLLM, "exported_adapter": adapter.name}), 502)  # :277-279
    assert_error(post(api, "/unload_adapter", {"adapter_name": adapter.name}), 400,
                 "vllm_url and adapter_name are required")  # app.py:289
    DeploymentFactory(adapter=adapter, target=VLLM)
    assert_error(post(api, "/unload_adapter", {"vllm_url": VLLM, "adapter_name": adapter.name}), 502)  # :301-303


def test_compare_failures(api):
    good = {"prompt": "Hi", "base_url": VLLM, "base_model": "tiny-phi3", "ft_model": "support-v1"}
    assert_error(post(api, "/compare", {**good, "prompt": ""}), 400, "prompt is required")  # app.py:311
    assert_error(post(api, "/compare", {**good, "base_model": ""}), 400,
                 "base_url/base_model and ft_url/ft_model are required")  # app.py:330
    assert_error(post(api, "/compare", good), 502)  # app.py:357-359: vLLM (here the proxy) can't be reached


def test_failures_outside_the_views_keep_the_envelope(api, client, settings):
    settings.SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS = False
    assert_error(client.get("/list_datasets"), 401)
    assert_error(api.get("/generate_data"), 405)
    assert_error(api.post("/generate_data", "{", content_type="application/json"), 400)
