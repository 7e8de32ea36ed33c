"""Request bodies over their limit: 413 in each API's error shape, refused before the body is read,
and nothing stored (no dataset, no file, no spooled upload left behind)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework import parsers
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from control_plane.core import parsers as core_parsers
from control_plane.datasets.models import Dataset
from tests.control_plane.helpers import assert_error_body, jsonl

pytestmark = pytest.mark.django_db

ROW = {"instruction": "Explain DNS in one sentence, please.", "output": "It maps names to addresses."}


def rows_of(size: int) -> bytes:
    """Valid JSONL of at least `size` bytes."""
    line = jsonl([ROW])
    return line * (size // len(line) + 1)


@pytest.fixture
def spool(cp_settings, tmp_path):
    """Every uploaded file spooled to disk in a folder of its own, to see what is left there."""
    folder = tmp_path / "spool"
    folder.mkdir()
    cp_settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    cp_settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


@pytest.fixture
def never_parsed(monkeypatch):
    """Fail the test if any body is parsed."""

    def refuse(*args, **kwargs):
        raise AssertionError("the body was read")

    monkeypatch.setattr(parsers.JSONParser, "parse", refuse)
    monkeypatch.setattr(core_parsers.StrictMultiPartParser, "parse", refuse)


def assert_nothing_stored(data_root):
    assert not Dataset.objects.exists()
    folder = data_root / "datasets"
    assert not folder.exists() or not list(folder.iterdir())


def test_a_json_body_over_the_limit_is_413_before_it_is_read(api, anonymous, cp_settings, never_parsed, data_root):
    cp_settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    body = {"name": "big", "content": rows_of(3000).decode()}
    reply = api.post("/api/v1/datasets/", body, format="json")
    error = assert_error_body(reply, 413, "PAYLOAD_TOO_LARGE")
    assert "2000 bytes (SYNTHTUNE_BODY_MAX_BYTES)" in error["message"] and "multipart/form-data" in error["message"]
    assert error["extra"]["limit_bytes"] == 2000 and error["extra"]["setting"] == "SYNTHTUNE_BODY_MAX_BYTES"
    assert error["extra"]["size_bytes"] == int(reply.wsgi_request.META["CONTENT_LENGTH"])
    # Checked before authentication too: a body too big is never read, for anyone.
    assert anonymous.post("/api/v1/datasets/", body, format="json").status_code == 413
    assert_nothing_stored(data_root)


def test_a_json_body_at_the_limit_is_read(api, cp_settings):
    body = json.dumps({"name": "fits", "content": jsonl([ROW]).decode()})
    cp_settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body)
    assert api.post("/api/v1/datasets/", body, content_type="application/json").status_code == 201


def test_a_multipart_file_over_the_upload_limit_is_413_and_leaves_nothing(api, cp_settings, spool, data_root):
    cp_settings.SYNTHTUNE_UPLOAD_MAX_BYTES = 4096
    upload = SimpleUploadedFile("big.jsonl", rows_of(200_000))  # under the multipart ceiling: streamed
    reply = api.post("/api/v1/datasets/", {"name": "big", "file": upload}, format="multipart")
    error = assert_error_body(reply, 413, "PAYLOAD_TOO_LARGE")
    assert error["extra"]["field"] == "file" and error["extra"]["setting"] == "SYNTHTUNE_UPLOAD_MAX_BYTES"
    assert "4096 bytes (SYNTHTUNE_UPLOAD_MAX_BYTES)" in error["message"]
    assert_nothing_stored(data_root)
    assert list(spool.iterdir()) == []  # the spooled part was deleted

    # A file within the limit still goes through the same handlers.
    small = SimpleUploadedFile("small.jsonl", jsonl([ROW]))
    assert api.post("/api/v1/datasets/", {"name": "small", "file": small}, format="multipart").status_code == 201
    assert list(spool.iterdir()) == []


def test_a_multipart_body_past_file_plus_fields_is_413_before_it_is_read(api, cp_settings, never_parsed):
    cp_settings.SYNTHTUNE_UPLOAD_MAX_BYTES = 4096
    cp_settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    upload = SimpleUploadedFile("big.jsonl", rows_of(20_000))
    error = assert_error_body(
        api.post("/api/v1/datasets/", {"file": upload}, format="multipart"), 413, "PAYLOAD_TOO_LARGE"
    )
    assert "at most 8192 bytes" in error["message"] and "SYNTHTUNE_UPLOAD_MAX_BYTES" in error["message"]


def test_multipart_fields_over_the_body_limit_are_413(api, cp_settings):
    cp_settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048  # Django's own check, while parsing the fields
    reply = api.post("/api/v1/datasets/", {"name": "big", "content": rows_of(5000).decode()}, format="multipart")
    error = assert_error_body(reply, 413, "PAYLOAD_TOO_LARGE")
    assert "SYNTHTUNE_BODY_MAX_BYTES" in error["message"] and error["extra"]["limit_bytes"] == 2048
    assert not Dataset.objects.exists()


def test_a_new_version_from_a_file_over_the_limit_is_413(api, cp_settings, spool):
    assert api.post("/api/v1/datasets/", {"name": "base", "content": jsonl([ROW]).decode()}, format="json").status_code == 201
    cp_settings.SYNTHTUNE_UPLOAD_MAX_BYTES = 4096
    upload = SimpleUploadedFile("v2.jsonl", rows_of(100_000))
    reply = api.post("/api/v1/datasets/base/versions/", {"file": upload}, format="multipart")
    assert_error_body(reply, 413, "PAYLOAD_TOO_LARGE")
    assert list(Dataset.objects.values_list("name", flat=True)) == ["base"]


def test_v1_files_over_the_limit_is_413_in_openais_shape(user, cp_settings, spool):
    cp_settings.SYNTHTUNE_UPLOAD_MAX_BYTES = 4096
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=user).key}")
    upload = SimpleUploadedFile("train.jsonl", rows_of(100_000))
    reply = client.post("/v1/files", {"file": upload, "purpose": "fine-tune"}, format="multipart")
    assert reply.status_code == 413
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "payload_too_large"
    assert error["param"] == "file" and "SYNTHTUNE_UPLOAD_MAX_BYTES" in error["message"]
    assert not Dataset.objects.exists() and list(spool.iterdir()) == []

    cp_settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    chat = {"model": "m", "messages": [{"role": "user", "content": "x" * 2000}]}
    reply = client.post("/v1/chat/completions", chat, format="json")
    assert reply.status_code == 413 and "SYNTHTUNE_BODY_MAX_BYTES" in reply.json()["error"]["message"]


@pytest.mark.parametrize("anonymous_allowed", [True, False])
def test_old_routes_answer_413_in_their_envelope(api, client, cp_settings, never_parsed, anonymous_allowed):
    cp_settings.SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS = anonymous_allowed
    cp_settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    caller = client if anonymous_allowed else api
    reply = caller.post("/compare", json.dumps({"prompt": "x" * 2000}), content_type="application/json")
    assert reply.status_code == 413
    body = reply.json()
    assert body["status"] == "error" and set(body) == {"status", "message"}
    assert "1024 bytes (SYNTHTUNE_BODY_MAX_BYTES)" in body["message"]
