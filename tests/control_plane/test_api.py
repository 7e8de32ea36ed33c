"""REST API: auth, the one error body, uploads, previews, downloads, generation over real gRPC."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from control_plane.datasets.models import Dataset, GenerationJob
from tests.control_plane.helpers import (
    CHAT_ROWS,
    INSTRUCTION_ROWS,
    assert_error_body,
    follow_to_end,
    generate_body,
    jsonl,
)

pytestmark = pytest.mark.django_db

DATASETS = "/api/v1/datasets/"
JOBS = "/api/v1/generation-jobs/"


def upload(api, name: str, rows) -> dict:
    response = api.post(DATASETS, {"name": name, "rows": rows}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


# --- auth and the error body ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", DATASETS),
        ("post", DATASETS),
        ("get", f"{DATASETS}x/"),
        ("get", f"{DATASETS}x/preview/"),
        ("get", f"{DATASETS}x/download/"),
        ("get", JOBS),
        ("post", JOBS),
        ("post", f"{JOBS}j/cancel/"),
        ("get", f"{JOBS}j/events/"),
        ("get", f"{JOBS}j/events/stream/"),
        ("get", "/api/schema/"),
        ("get", "/api/docs/"),
    ],
)
def test_anonymous_calls_get_401_in_the_error_body(anonymous, method, url):
    response = getattr(anonymous, method)(url)
    body = assert_error_body(response, 401, "UNAUTHENTICATED")
    assert response["WWW-Authenticate"] == "Token"
    assert "Authorization: Token" in body["message"]


def test_a_wrong_token_is_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error_body(anonymous.get(DATASETS), 401, "UNAUTHENTICATED")


def test_an_admin_session_works_for_the_api(client, staff):
    client.force_login(staff)
    assert client.get(DATASETS).status_code == 200


def test_unknown_routes_and_records_are_404_in_the_error_body(api):
    assert_error_body(api.get("/api/v1/nothing-here/"), 404, "NOT_FOUND")
    body = assert_error_body(api.get(f"{DATASETS}missing/"), 404, "NOT_FOUND")
    assert "missing" in body["message"]
    assert_error_body(api.get(f"{JOBS}nope/"), 404, "NOT_FOUND")


def test_wrong_method_and_malformed_json_use_the_error_body(api):
    assert_error_body(api.delete(DATASETS), 405, "METHOD_NOT_ALLOWED")
    response = api.post(DATASETS, data="{not json", content_type="application/json")
    assert_error_body(response, 400, "INVALID_ARGUMENT")


def test_request_ids_are_returned_and_unsafe_ones_replaced(api):
    assert api.get(DATASETS, HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    replaced = api.get(DATASETS, HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert replaced and "\n" not in replaced and replaced != "bad id\nwith newline"


# --- upload ----------------------------------------------------------------------------------


def test_upload_rows_as_json_writes_the_file_and_records_it(api, user, data_root):
    body = upload(api, "greetings", INSTRUCTION_ROWS)
    path = data_root / "datasets" / "greetings.jsonl"
    assert path.read_bytes() == jsonl(INSTRUCTION_ROWS)
    assert body["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (body["rows"], body["format"], body["source"], body["status"]) == (
        3,
        "instruction",
        "uploaded",
        "ready",
    )
    assert body["path"] == "datasets/greetings.jsonl" and body["owner"] == user.username


def test_upload_a_multipart_file_takes_its_name_from_the_file(api, data_root):
    file = SimpleUploadedFile("chatty.jsonl", jsonl(CHAT_ROWS), content_type="application/jsonl")
    response = api.post(DATASETS, {"file": file}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "chatty" and response.json()["format"] == "chat"
    assert (data_root / "datasets" / "chatty.jsonl").read_bytes() == jsonl(CHAT_ROWS)


def test_upload_reports_bad_lines_by_number_and_writes_nothing(api, data_root):
    content = "\n".join(
        [
            json.dumps(INSTRUCTION_ROWS[0]),
            "{not json",
            json.dumps({"instruction": "No answer", "output": "  "}),
            json.dumps(CHAT_ROWS[0]),
            json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        ]
    )
    response = api.post(DATASETS, {"name": "broken", "content": content}, format="json")
    body = assert_error_body(response, 400, "INVALID_ARGUMENT")
    assert [error["line"] for error in body["extra"]["errors"]] == [2, 3, 5]
    assert "line 2" in body["message"] and "line 3" in body["message"] and "line 5" in body["message"]
    assert body["extra"]["field"] == "file"
    assert not Dataset.objects.exists()
    assert not (data_root / "datasets").exists() or not any((data_root / "datasets").iterdir())


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/b", "..", ".hidden", "x" * 200, ""])
def test_upload_rejects_unsafe_names(api, data_root, name):
    response = api.post(DATASETS, {"name": name, "rows": INSTRUCTION_ROWS}, format="json")
    body = assert_error_body(response, 400, "INVALID_ARGUMENT")
    assert body["extra"]["field"] == "name"
    assert not Dataset.objects.exists()
    assert not list(data_root.rglob("*.jsonl"))


@pytest.mark.parametrize("filename", ["../../escape.jsonl", "/etc/escape.jsonl", "..\\escape.jsonl"])
def test_upload_rejects_file_names_with_folders(api, data_root, filename):
    boundary = "XBOUNDARY"
    payload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: application/jsonl\r\n\r\n"
        ).encode()
        + jsonl(INSTRUCTION_ROWS)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = api.generic(
        "POST", DATASETS, payload, content_type=f"multipart/form-data; boundary={boundary}"
    )
    body = assert_error_body(response, 400, "INVALID_ARGUMENT")
    assert "plain file name" in body["message"]
    assert not list(data_root.rglob("*.jsonl"))


def test_upload_problems_each_have_a_clear_400(api):
    cases = [
        ({"rows": INSTRUCTION_ROWS}, "name"),  # no name and no file to take it from
        ({"name": "x"}, "file"),  # nothing to upload
        ({"name": "x", "rows": [], "content": "{}"}, "file"),  # two sources
        ({"name": "x", "rows": []}, "file"),  # no rows
    ]
    for body, field in cases:
        error = assert_error_body(api.post(DATASETS, body, format="json"), 400, "INVALID_ARGUMENT")
        assert error["extra"]["field"] == field, (body, error)
    latin1 = SimpleUploadedFile(
        "latin.jsonl", '{"instruction": "caf\xe9", "output": "x"}\n'.encode("latin-1")
    )
    error = assert_error_body(
        api.post(DATASETS, {"file": latin1}, format="multipart"), 400, "INVALID_ARGUMENT"
    )
    assert "UTF-8" in error["message"]


def test_upload_of_a_taken_name_is_409(api):
    upload(api, "taken", INSTRUCTION_ROWS)
    body = assert_error_body(
        api.post(DATASETS, {"name": "taken", "rows": CHAT_ROWS}, format="json"), 409, "ALREADY_EXISTS"
    )
    assert "taken" in body["message"]


# --- list, retrieve, preview, download ----------------------------------------------------------


def test_list_filters_and_search(api):
    upload(api, "alpha-instr", INSTRUCTION_ROWS)
    upload(api, "beta-chat", CHAT_ROWS)
    names = lambda query: [d["name"] for d in api.get(DATASETS, query).json()["results"]]
    assert set(names({})) == {"alpha-instr", "beta-chat"}
    assert names({"format": "chat"}) == ["beta-chat"]
    assert names({"search": "alpha"}) == ["alpha-instr"]
    assert names({"status": "generating"}) == []
    assert_error_body(api.get(DATASETS, {"status": "bogus"}), 400, "INVALID_ARGUMENT")


def test_retrieve_shows_the_record(api):
    upload(api, "record", INSTRUCTION_ROWS)
    body = api.get(f"{DATASETS}record/").json()
    assert body["name"] == "record" and body["rows"] == 3 and body["params"] == {}


def test_preview_returns_the_first_rows_optionally_converted(api):
    upload(api, "preview-me", INSTRUCTION_ROWS)
    body = api.get(f"{DATASETS}preview-me/preview/", {"limit": 2}).json()
    assert body["rows"] == INSTRUCTION_ROWS[:2]
    chat = api.get(f"{DATASETS}preview-me/preview/", {"limit": 1, "format": "chat"}).json()["rows"]
    assert chat == [
        {"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"}]}
    ]
    for limit in (0, -1, 10**9, "many"):
        assert_error_body(
            api.get(f"{DATASETS}preview-me/preview/", {"limit": limit}), 400, "INVALID_ARGUMENT"
        )


def _download(api, name: str, **query) -> tuple[object, list[dict]]:
    response = api.get(f"{DATASETS}{name}/download/", query)
    assert response.status_code == 200, response.content
    return response, [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


def test_download_as_stored_and_in_both_formats(api):
    upload(api, "both", INSTRUCTION_ROWS)
    response, rows = _download(api, "both")
    assert rows == INSTRUCTION_ROWS
    assert response["Content-Disposition"] == 'attachment; filename="both.jsonl"'

    response, chat = _download(api, "both", format="chat")
    assert response["Content-Disposition"] == 'attachment; filename="both.chat.jsonl"'
    assert chat[2]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]
    upload(api, "chats", CHAT_ROWS)
    _, instruction = _download(api, "chats", format="instruction")
    assert instruction == [
        {"instruction": "Say hello.", "output": "Hello!"},
        {"instruction": "Name a colour.", "system": "Be brief.", "output": "Blue."},
    ]


def test_download_rejects_unknown_formats_and_unfinished_datasets(api):
    upload(api, "fmt", INSTRUCTION_ROWS)
    body = assert_error_body(api.get(f"{DATASETS}fmt/download/", {"format": "csv"}), 400, "INVALID_ARGUMENT")
    assert body["extra"]["field"] == "format"
    Dataset.objects.create(name="busy", path="datasets/busy.jsonl", source="generated", status="generating")
    body = assert_error_body(api.get(f"{DATASETS}busy/download/"), 400, "FAILED_PRECONDITION")
    assert "generating" in body["message"]


# --- generate: validation before any gRPC ------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_rows": 0, "mode": "fixed", "prompt_template": "x"}, "num_rows"),
        ({"num_rows": -5, "mode": "fixed", "prompt_template": "x"}, "num_rows"),
        ({"num_rows": 10**12, "mode": "fixed", "prompt_template": "x"}, "num_rows"),
        ({"num_rows": "lots", "mode": "fixed", "prompt_template": "x"}, "num_rows"),
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": "ftp://example.com/v1"}, "base_url"),
        ({"base_url": "http://user:pw@example.com/v1"}, "base_url"),
        ({"name": "../escape"}, "name"),
        ({"name": "/abs/path"}, "name"),
        ({"mode": "telepathy"}, "mode"),
        ({"mode": "fixed"}, "prompt_template"),
        ({"mode": "self_instruct", "num_rows": 5}, "topic"),
        ({"instructions": []}, "instructions"),
        ({"temperature": 7}, "temperature"),
        ({"top_p": 0}, "top_p"),  # datagen takes (0, 1]: refused here, before any call
        ({"top_p": 1.5}, "top_p"),
        ({"concurrency": 0}, "concurrency"),
        ({"model": ""}, "model"),
    ],
)
def test_generate_rejects_bad_input_with_the_field_named(api, overrides, field):
    body = generate_body(**overrides)
    error = assert_error_body(api.post(JOBS, body, format="json"), 400, "INVALID_ARGUMENT")
    assert error["extra"]["field"] == field, error
    assert not Dataset.objects.exists() and not GenerationJob.objects.exists()


def test_generate_rejects_non_finite_numbers_from_forms(api):
    body = {**generate_body(), "temperature": "nan"}
    body["instructions"] = body["instructions"][0]
    error = assert_error_body(api.post(JOBS, body, format="multipart"), 400, "INVALID_ARGUMENT")
    assert error["extra"]["field"] == "temperature"


def test_generate_lists_every_missing_field(api):
    error = assert_error_body(api.post(JOBS, {}, format="json"), 400, "INVALID_ARGUMENT")
    assert set(error["extra"]["fields"]) == {"name", "base_url", "model"}
    assert error["message"].startswith("name: This field is required.")


def test_generate_with_datagen_down_is_503_naming_the_address_and_writes_nothing(api, cp_settings):
    error = assert_error_body(
        api.post(JOBS, generate_body(), format="json"), 503, "UNAVAILABLE"
    )
    assert cp_settings.SYNTHTUNE_DATAGEN_ADDR in error["message"]
    assert error["extra"]["address"] == cp_settings.SYNTHTUNE_DATAGEN_ADDR
    assert not Dataset.objects.exists() and not GenerationJob.objects.exists()


def test_generate_without_a_grpc_token_is_503_saying_so(api, cp_settings):
    cp_settings.SYNTHTUNE_GRPC_TOKEN = ""
    error = assert_error_body(
        api.post(JOBS, generate_body(), format="json"), 503, "UNAVAILABLE"
    )
    assert "SYNTHTUNE_GRPC_TOKEN" in error["message"]


def test_generate_name_taken_by_an_upload_is_409(api):
    upload(api, "support", INSTRUCTION_ROWS)
    assert_error_body(
        api.post(JOBS, generate_body(), format="json"), 409, "ALREADY_EXISTS"
    )


# --- generate over real gRPC ---------------------------------------------------------------------


@pytest.mark.slow
def test_generate_end_to_end_against_the_datagen_service(api, datagen, teacher, data_root):
    """REST -> gRPC -> datagen -> real vLLM (tiny model) -> file -> worker -> DB."""
    response = api.post(
        JOBS, generate_body(teacher), format="json", HTTP_X_REQUEST_ID="rid-generate-42"
    )
    assert response.status_code == 202, response.json()
    job_id = response.json()["job_id"]
    assert response.json()["dataset"] == "support" and response.json()["target_rows"] == 4
    assert "token" not in response.json()

    job = follow_to_end(job_id)
    # The tiny model is random: an empty answer is dropped (and from_instructions can't replace it).
    assert job.state == "succeeded" and job.kept + job.dropped == 4 and job.kept >= 3
    assert job.prompt_tokens > 0 and job.completion_tokens > 0  # from vLLM's usage

    dataset = api.get(f"{DATASETS}support/").json()
    path = data_root / dataset["path"]
    assert dataset["status"] == "ready" and dataset["rows"] == job.kept and dataset["source"] == "generated"
    assert dataset["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dataset["size_bytes"] == path.stat().st_size
    assert dataset["params"]["instructions"][0] == "Explain DNS." and "token" not in dataset["params"]

    events = api.get(f"{JOBS}{job_id}/events/").json()
    assert events["finished"] is True and events["state"] == "succeeded"
    seqs = [event["seq"] for event in events["events"]]
    assert seqs == list(range(1, len(seqs) + 1))
    types = [event["type"] for event in events["events"]]
    assert types[-2:] == ["dataset_written", "state_changed"]
    later = api.get(f"{JOBS}{job_id}/events/", {"after_seq": seqs[-2]}).json()["events"]
    assert [event["seq"] for event in later] == [seqs[-1]]

    rows = api.get(f"{DATASETS}support/preview/").json()["rows"]
    assert len(rows) == job.kept and all(row["output"].strip() for row in rows)
    assert {row["instruction"] for row in rows} <= {f"Explain {w}." for w in ("DNS", "TCP", "UDP", "TLS")}
    assert "rid-generate-42" in datagen.log_text()  # the request id travelled over gRPC


def test_the_service_validation_is_mapped_to_400_with_api_field_names(api, datagen, teacher):
    body = generate_body(teacher, base_url=teacher.base_url + "?key=1")  # fine for us, refused by the service
    error = assert_error_body(api.post(JOBS, body, format="json"), 400, "INVALID_ARGUMENT")
    assert error["extra"]["field"] == "base_url" and "query string" in error["message"]
    assert not Dataset.objects.exists()


def test_cancel_then_resume_keeps_rows_and_reaches_the_target(api, datagen, teacher, data_root):
    body = generate_body(teacher, instructions=[f"Question {n}?" for n in range(12)], concurrency=1)
    job_id = api.post(JOBS, body, format="json").json()["job_id"]
    assert api.post(f"{JOBS}{job_id}/cancel/").status_code == 202

    job = follow_to_end(job_id)
    assert job.state == "cancelled" and job.kept < 12
    dataset = api.get(f"{DATASETS}support/").json()
    assert dataset["status"] == "cancelled"
    preview = api.get(f"{DATASETS}support/preview/").json()["rows"]  # from the .partial file
    assert len(preview) == job.kept
    assert_error_body(api.post(f"{JOBS}{job_id}/cancel/"), 400, "FAILED_PRECONDITION")

    response = api.post(f"{JOBS}{job_id}/resume/", {"token": "endpoint-token-123456"}, format="json")
    assert response.status_code == 202 and response.json()["state"] in ("queued", "running")
    job = follow_to_end(job_id)
    assert job.state == "succeeded" and job.kept == 12
    assert api.get(f"{DATASETS}support/").json()["rows"] == 12
    assert_error_body(api.post(f"{JOBS}{job_id}/resume/", {}, format="json"), 400, "FAILED_PRECONDITION")


def test_job_list_filters(api, datagen, teacher):
    job_id = api.post(JOBS, generate_body(teacher), format="json").json()["job_id"]
    follow_to_end(job_id)
    assert [j["job_id"] for j in api.get(JOBS, {"state": "succeeded"}).json()["results"]] == [job_id]
    assert api.get(JOBS, {"state": "running"}).json()["results"] == []
    assert [j["job_id"] for j in api.get(JOBS, {"dataset": "support"}).json()["results"]] == [job_id]
    assert api.get(f"{JOBS}{job_id}/").json()["percent"] == 100


# --- OpenAPI ------------------------------------------------------------------------------------


def test_openapi_schema_and_docs_are_served_offline(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert {"/api/v1/datasets/", "/api/v1/generation-jobs/{job_id}/events/stream/"} <= set(paths)

    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "https://" not in html
    asset = api.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
