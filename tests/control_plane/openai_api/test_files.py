"""/v1/files through the official SDK: upload, list with pagination, retrieve, content, delete,
and the SDK's exception classes for bad input."""

from __future__ import annotations

import json

import openai
import pytest

from control_plane.datasets.models import Dataset
from tests.control_plane.helpers import CHAT_ROWS, jsonl
from tests.control_plane.openai_api.conftest import sdk_client
from tests.control_plane.runs.factories import RunFactory


def upload(sdk, name: str = "train.jsonl", data: bytes | None = None):
    return sdk.files.create(file=(name, data if data is not None else jsonl(CHAT_ROWS)), purpose="fine-tune")


def test_an_uploaded_file_is_a_dataset_with_openais_file_object(sdk):
    data = jsonl(CHAT_ROWS)
    uploaded = upload(sdk, "support chat.jsonl", data)

    dataset = Dataset.objects.get()
    assert uploaded.id == f"file-{dataset.name}" and dataset.name.startswith("support-chat-")
    assert (uploaded.object, uploaded.purpose, uploaded.status) == ("file", "fine-tune", "processed")
    assert (uploaded.filename, uploaded.bytes) == ("support chat.jsonl", len(data))
    assert (dataset.rows, dataset.format, dataset.source) == (len(CHAT_ROWS), "chat", "uploaded")
    assert sdk.files.retrieve(uploaded.id).model_dump() == uploaded.model_dump()
    assert sdk.files.content(uploaded.id).read() == data


def test_files_list_newest_first_over_several_pages(sdk):
    ids = [upload(sdk, f"part{n}.jsonl").id for n in range(5)]

    first = sdk.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2] and first.has_more
    assert [f.id for f in sdk.files.list(limit=2)] == ids[::-1]  # the SDK follows `after` page by page
    assert [f.id for f in sdk.files.list(limit=3, order="asc")] == ids
    last = sdk.files.list(limit=2, after=ids[1])
    assert [f.id for f in last.data] == [ids[0]] and not last.has_more
    assert sdk.files.list(purpose="batch").data == []


def test_delete_removes_the_dataset_and_its_file_unless_a_run_used_it(sdk, data_root):
    kept, gone = upload(sdk, "kept.jsonl"), upload(sdk, "gone.jsonl")
    path = data_root / Dataset.objects.get(name=gone.id.removeprefix("file-")).path

    deleted = sdk.files.delete(gone.id)
    assert (deleted.id, deleted.deleted) == (gone.id, True) and not path.exists()
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(gone.id)

    RunFactory().datasets.add(Dataset.objects.get(name=kept.id.removeprefix("file-")))
    with pytest.raises(openai.BadRequestError, match="is the data of run"):
        sdk.files.delete(kept.id)
    assert sdk.files.retrieve(kept.id).status == "processed"


def test_bad_input_raises_the_sdks_exception_with_a_readable_message(sdk, live_server):
    with pytest.raises(openai.BadRequestError) as info:
        upload(sdk, "broken.jsonl", b'{"messages": [{"role": "user", "content": "hi"}]}\n{not json\n')
    assert info.value.status_code == 400 and "line 1" in info.value.message and info.value.param == "file"
    body = info.value.body  # the SDK hands over the `error` object
    assert set(body) == {"message", "type", "param", "code"} and body["type"] == "invalid_request_error"
    assert Dataset.objects.count() == 0  # nothing half-stored

    with pytest.raises(openai.BadRequestError, match="purpose"):
        sdk.files.create(file=("x.jsonl", jsonl(CHAT_ROWS)), purpose="batch")
    with pytest.raises(openai.NotFoundError, match="No such file"):
        sdk.files.retrieve("file-nope")
    with pytest.raises(openai.NotFoundError, match="start with 'file-'"):
        sdk.files.retrieve("nope")
    with sdk_client(live_server, "wrong-token") as stranger, pytest.raises(openai.AuthenticationError) as info:
        stranger.files.list()
    assert "Bearer" in info.value.message and info.value.code == "invalid_api_key"


def test_a_missing_token_is_a_401_in_openais_shape(live_server, db):
    import httpx

    reply = httpx.get(f"{live_server.url}/v1/files")
    assert reply.status_code == 401 and reply.headers["WWW-Authenticate"] == "Bearer"
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and "Bearer" in error["message"]
    assert json.loads(reply.text) == {"error": error}


def test_an_unknown_v1_route_is_a_404_in_openais_shape(sdk):
    with pytest.raises(openai.NotFoundError, match="Unknown request URL: GET /v1/batches") as info:
        sdk.batches.list()
    assert info.value.code == "unknown_url"
