"""The old Flask app's routes against the running stack (synthtune.stack, as `make up` runs it):
real services, the worker, gunicorn, and the session's real vLLM as teacher and serving target.

One stack for the module. Its proxy knows two vLLM targets: the real one, and a closed port
(a vLLM that is down). DEFAULT_ADAPTER_NAME is set, so runs export <it>-v<N>.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from synthtune.readiness import free_port
from tests.control_plane.deployments.helpers import pattern_rows
from tests.control_plane.legacy import old_app
from tests.control_plane.legacy.old_app import assert_shape
from tests.support.stack import running_stack

pytestmark = pytest.mark.slow

STEM = "legacy-ft"  # DEFAULT_ADAPTER_NAME
TEACHER_TOKEN = "teacher-secret-7f3a9c2e51"
VLLM_TOKEN = "vllm-secret-0b8e4d6a27"
ROUTES = [
    ("GET", "/list_datasets"),
    ("GET", "/list_exported_adapters"),
    ("GET", "/finetune_status?job_id=x"),
    ("POST", "/generate_data"),
    ("POST", "/finetune"),
    ("POST", "/hotload_adapter"),
    ("POST", "/unload_adapter"),
    ("POST", "/compare"),
    ("POST", "/event_log"),
]


@pytest.fixture(scope="module")
def down_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens: a vLLM, or an endpoint, that is down


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_models, vllm_server, down_url):
    with running_stack(
        tmp_path_factory.mktemp("legacy"),
        SYNTHTUNE_MODELS_ROOT=str(tiny_models),
        SYNTHTUNE_VLLM_URL=vllm_server.url,
        SYNTHTUNE_VLLM_REPLICAS=f"{vllm_server.url},{down_url}",
        SYNTHTUNE_DATAGEN_RETRY_INITIAL_S="0.05",
        SYNTHTUNE_DATAGEN_RETRY_MAX_S="0.2",
        DEFAULT_ADAPTER_NAME=STEM,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Token {stack.token}"}, timeout=300) as client:
        yield client


def fails(response: httpx.Response, status: int, *fragments: str) -> str:
    """Assert the old failure envelope with `status`, its message holding each fragment."""
    return old_app.assert_error(response, status, *fragments)


def upload(http, name: str, rows: list[dict]) -> None:
    response = http.post("/api/v1/datasets/", json={"name": name, "rows": rows})
    assert response.status_code == 201, response.text


def secrets_on_disk(root: Path, *secrets: str) -> list[str]:
    """Files under the data root (DB and its WAL, logs, datasets, job and run folders) holding a secret."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}: {s}" for s in secrets if s.encode() in data]
    return found


# --- auth and health ------------------------------------------------------------------------


def test_healthz_is_open_and_answers_the_old_text(stack):
    response = httpx.get(f"{stack.url}/healthz")
    assert response.status_code == 200 and response.text == "ok"
    assert httpx.get(f"{stack.url}/healthz", headers={"Accept": "application/json"}).json() == {"status": "ok"}


def test_every_route_wants_the_api_token_or_a_session(stack):
    for method, path in ROUTES:
        anonymous = httpx.request(method, f"{stack.url}{path}", json={})
        fails(anonymous, 401, "Token")
        assert anonymous.headers["WWW-Authenticate"].startswith("Token"), path
        fails(httpx.request(method, f"{stack.url}{path}", json={}, headers={"Authorization": "Token nope"}), 401)

    with httpx.Client(base_url=stack.url, timeout=30) as browser:  # the admin login, as the old UI's users
        browser.get("/admin/login/")
        csrf = browser.cookies["csrftoken"]
        login = browser.post(
            "/admin/login/?next=/admin/",
            data={"username": stack.username, "password": stack.password, "csrfmiddlewaretoken": csrf},
        )
        assert login.status_code == 302 and "sessionid" in browser.cookies
        assert browser.get("/list_datasets").json() == {"status": "success", "files": []}
        # A session keeps CSRF protection (the token header does not need it: see `http`).
        fails(browser.post("/event_log", json={"event": "x"}), 403, "CSRF")
        ok = browser.post("/event_log", json={"event": "x"}, headers={"X-CSRFToken": browser.cookies["csrftoken"]})
        assert ok.json() == {"status": "ok"}


# --- data generation ----------------------------------------------------------------------


def test_generate_data_is_synchronous_and_lists_the_file(stack, http, vllm_server):
    response = http.post(
        "/generate_data",
        json={
            "base_url": vllm_server.base_url,
            "model": vllm_server.model,
            "bearer_token": TEACHER_TOKEN,
            "num_samples": 3,
            "prompt_template": "Name a colour.",
            "request_timeout_sec": 60,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_shape(body, old_app.GENERATE_DATA, status="success")
    meta = body["meta"]
    # What the old page prints (index.html:61-63): file_name, file_path, num_rows (a string).
    assert_shape(meta, old_app.GENERATE_DATA_META, extra=old_app.EXTRA_GENERATE_DATA_META)
    assert meta["num_rows"] == "3" and meta["rows_written"] == 3 and meta["file_name"].endswith(".jsonl")
    assert meta["model"] == vllm_server.model
    written = Path(meta["file_path"])
    assert written == stack.stack.config.data_root.resolve() / "datasets" / meta["file_name"]
    rows = written.read_text().splitlines()
    assert len(rows) == 3 and all('"instruction": "Name a colour."' in row for row in rows)

    listed = http.get("/list_datasets").json()
    assert_shape(listed, old_app.LIST_DATASETS, status="success")
    assert {"name": meta["file_name"], "size_bytes": written.stat().st_size, "num_rows": 3} in listed["files"]
    # The same record through /api/v1: one implementation.
    assert http.get(f"/api/v1/datasets/{meta['dataset']}/").json()["rows"] == 3


def test_generate_data_validations_and_a_down_endpoint(http, vllm_server, down_url):
    good = {"base_url": vllm_server.base_url, "model": vllm_server.model, "bearer_token": TEACHER_TOKEN}
    fails(http.post("/generate_data", json={**good, "base_url": ""}), 400, "Base URL is required")
    fails(http.post("/generate_data", json={**good, "model": None}), 400, "Model name is required")
    fails(http.post("/generate_data", json={k: v for k, v in good.items() if k != "bearer_token"}), 400,
          "Bearer token is required")
    fails(http.post("/generate_data", json={**good, "num_samples": 0}), 400, "num_samples")
    fails(http.post("/generate_data", json={**good, "num_samples": "many"}), 400, "num_samples")
    fails(http.post("/generate_data", json={**good, "base_url": "ftp://host/v1"}), 400, "base_url")
    fails(http.post("/generate_data", json={**good, "request_timeout_sec": -1}), 400, "request_timeout_sec")
    # The endpoint is down: the job fails after its retries, and the answer says why (the old 502).
    down = http.post("/generate_data", json={**good, "base_url": f"{down_url}/v1", "num_samples": 2})
    fails(down, 502, "Generation failed", "connect")


# --- fine-tuning, adapters, serving -------------------------------------------------------------


def test_finetune_validations_and_unknown_jobs(http):
    upload(http, "legacy-small", pattern_rows(6))
    fails(http.post("/finetune", json={}), 400, "selected_files must be a non-empty list")
    fails(http.post("/finetune", json={"selected_files": "legacy-small.jsonl"}), 400, "non-empty list")
    for bad in ("../legacy-small.jsonl", "/etc/passwd", "nope.jsonl", "datasets/legacy-small.jsonl"):
        fails(http.post("/finetune", json={"selected_files": [bad]}), 400, f"File not found or invalid: {bad}")
    base = {"selected_files": ["legacy-small.jsonl"], "base_model_id": "tiny-phi3"}
    # The runs service's own range checks, named as the old request names the field.
    fails(http.post("/finetune", json={**base, "learning_rate": -1}), 400, "learning_rate", "out of range")
    fails(http.post("/finetune", json={**base, "num_epochs": 0}), 400, "num_epochs")
    fails(http.post("/finetune", json={**base, "per_device_train_batch_size": "two"}), 400,
          "per_device_train_batch_size")
    fails(http.post("/finetune", json={**base, "base_model_id": "../models/x"}), 400, "base_model_id")
    assert http.get("/api/v1/runs/").json()["count"] == 0  # nothing half-started

    assert http.get("/finetune_status", params={"job_id": "run-does-not-exist"}).json() == {"status": "not_found"}
    fails(http.get("/finetune_status"), 400, "job_id query parameter is required")


def test_finetune_hotload_compare_unload(stack, http, vllm_server, down_url):
    upload(http, "legacy-train", pattern_rows(24))
    assert any(f["name"] == "legacy-train.jsonl" for f in http.get("/list_datasets").json()["files"])
    started = http.post(
        "/finetune",
        json={
            "selected_files": ["legacy-train.jsonl"],
            "base_model_id": "tiny-phi3",
            "num_epochs": 1,
            "learning_rate": 5e-3,
            "max_seq_len": 128,
        },
    ).json()
    assert_shape(started, old_app.FINETUNE, status="started")
    job_id = started["job_id"]
    seen, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline:
        status = http.get("/finetune_status", params={"job_id": job_id}).json()
        assert_shape(status, old_app.FINETUNE_STATUS, extra=old_app.EXTRA_FINETUNE_STATUS)
        seen.append(status["status"])
        if status["status"] in ("done", "error"):
            break
        time.sleep(0.5)
    assert status["status"] == "done", status
    assert set(seen) <= {"queued", "running", "done"} and status["progress"] == "Training complete."
    assert status["error"] is None and status["base_model_id"] == "tiny-phi3"
    adapter_dir = Path(status["adapter_dir"])
    name = adapter_dir.name
    assert name.startswith(f"{STEM}-v") and (adapter_dir / "adapter_config.json").is_file()  # DEFAULT_ADAPTER_NAME
    assert Path(status["output_dir"]).name == job_id and Path(status["output_dir"]).is_dir()
    run = http.get(f"/api/v1/runs/{job_id}/").json()
    assert run["adapter"] == name and run["hyperparameters"]["batch_size"] == 2  # the old default
    listed = http.get("/list_exported_adapters").json()
    assert_shape(listed, old_app.LIST_EXPORTED_ADAPTERS, status="success")
    assert {"name": name, "path": str(adapter_dir)} in listed["adapters"]

    # Hot-load: vllm_url must be one the proxy is configured for; exported_adapter defaults to
    # DEFAULT_ADAPTER_NAME, a stable name meaning its newest version.
    fails(http.post("/hotload_adapter", json={"exported_adapter": name}), 400, "vllm_url and exported_adapter")
    fails(http.post("/hotload_adapter", json={"vllm_url": "http://127.0.0.1:9", "exported_adapter": name}), 400,
          "not a vLLM target this proxy is configured for")
    fails(http.post("/hotload_adapter", json={"vllm_url": vllm_server.url, "exported_adapter": "../x"}), 400,
          "exported_adapter")
    fails(http.post("/hotload_adapter", json={"vllm_url": vllm_server.url, "exported_adapter": "ghost"}), 400,
          "No adapter named 'ghost'")
    fails(http.post("/hotload_adapter", json={"vllm_url": vllm_server.url, "adapter_name": "my-lora"}), 400,
          f"serves {name!r} under that name")
    fails(http.post("/hotload_adapter", json={"vllm_url": down_url, "exported_adapter": name}), 502, down_url)
    # adapter_name may be the old stable name (the stem): served under the versioned name answered.
    loaded = http.post("/hotload_adapter", json={"vllm_url": vllm_server.url, "token": VLLM_TOKEN,
                                                 "adapter_name": STEM})
    assert loaded.status_code == 200, loaded.text
    body = loaded.json()
    assert_shape(body, old_app.HOTLOAD_ADAPTER, status="success")
    assert body["adapter_name"] == name and body["response"]["ok"] is True
    assert body["lora_path"] == str(adapter_dir)  # where this vLLM loaded it from
    [deployment] = http.get("/api/v1/deployments/", params={"adapter": name}).json()["results"]
    assert deployment["state"] == "loaded" and deployment["target"] == vllm_server.url

    try:
        compare = {
            "prompt": "Say something about a map, number 3.",
            "base_url": vllm_server.url,
            "base_model": vllm_server.model,
            "ft_model": STEM,  # the stable name: its newest loaded version
            "token": VLLM_TOKEN,
            "max_new_tokens": 12,
            "temperature": 0,
        }
        compared = http.post("/compare", json=compare)
        assert compared.status_code == 200, compared.text
        result = compared.json()
        assert_shape(result, old_app.COMPARE, extra=old_app.EXTRA_COMPARE, status="success")
        assert result["finetuned"]
        assert result["prompt_format"] == "chat"  # the adapter's recorded format: the one difference
        assert result["base"] != result["finetuned"]
        comparison = http.get("/api/v1/comparisons/", params={"adapter": name}).json()["results"][0]
        assert comparison["served_name"] == name and comparison["request"]["sampling"]["max_tokens"] == 12

        fails(http.post("/compare", json={**compare, "prompt": " "}), 400, "prompt is required")
        fails(http.post("/compare", json={**compare, "base_model": ""}), 400, "base_url/base_model and ft_url/ft_model")
        fails(http.post("/compare", json={**compare, "ft_url": down_url}), 400, "same vLLM")
        fails(http.post("/compare", json={**compare, "base_model": "other-base"}), 400, "is not the base of")
        fails(http.post("/compare", json={**compare, "ft_model": "ghost"}), 400, "ghost", "not an adapter loaded")
        fails(http.post("/compare", json={**compare, "max_new_tokens": 0}), 400, "max_new_tokens")
        fails(http.post("/compare", json={**compare, "base_url": down_url}), 502, down_url)
    finally:
        # adapter_name: the exported adapter's name, as the old page sends it (index.html:194, 207).
        unloaded = http.post("/unload_adapter", json={"vllm_url": vllm_server.url, "adapter_name": name,
                                                      "token": VLLM_TOKEN})
    assert unloaded.status_code == 200, unloaded.text
    assert_shape(unloaded.json(), old_app.UNLOAD_ADAPTER, status="success")
    assert unloaded.json() == {"status": "success", "adapter_name": name,
                               "response": {"ok": True, "target": vllm_server.url, "state": "unloaded"}}
    fails(http.post("/unload_adapter", json={"vllm_url": vllm_server.url, "adapter_name": name}), 400,
          "is not loaded on vLLM")
    fails(http.post("/unload_adapter", json={"vllm_url": vllm_server.url}), 400, "is not loaded")  # the stem
    fails(http.post("/unload_adapter", json={"adapter_name": name}), 400, "vllm_url and adapter_name are required")


# --- UI events and secrets -------------------------------------------------------------------


def test_event_log_redacts_secrets(stack, http):
    payload = {
        "token": "evt-secret-aaa111",
        "form": {"bearer_token": "evt-secret-bbb222", "ft_token": "evt-secret-ccc333", "api_key": "evt-secret-ddd444"},
        "note": "sent Authorization: Bearer evt-secret-eee555",
        "rows": 3,
    }
    response = http.post("/event_log", json={"event": "train-clicked", "payload": payload})
    assert response.json() == {"status": "ok"}
    deadline = time.monotonic() + 10
    while "ui:train-clicked" not in stack.log_text("control-plane") and time.monotonic() < deadline:
        time.sleep(0.1)
    log = stack.log_text("control-plane")
    [line] = [line for line in log.splitlines() if "ui:train-clicked" in line]
    assert '"rows": 3' in line and "[REDACTED]" in line
    assert "evt-secret" not in log


def test_no_token_is_stored_or_logged(stack):
    # Runs last in the module: every token above went through generation, load, compare and unload.
    assert secrets_on_disk(stack.stack.config.data_root, TEACHER_TOKEN, VLLM_TOKEN) == []
