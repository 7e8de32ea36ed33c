"""REST API for versions: edit, merge, lineage, diff; row metadata in previews and downloads;
the legacy /list_datasets still listing file names."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from control_plane.datasets.models import Dataset
from tests.control_plane.helpers import CHAT_ROWS, INSTRUCTION_ROWS, assert_error_body, jsonl

pytestmark = pytest.mark.django_db

DATASETS = "/api/v1/datasets/"
MERGES = "/api/v1/dataset-merges/"
EXTRA = {"instruction": "Say goodbye.", "output": "Bye!"}


def upload(api, name: str, rows) -> dict:
    response = api.post(DATASETS, {"name": name, "rows": rows}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def created(response) -> dict:
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", f"{DATASETS}x/lineage/"),
        ("get", f"{DATASETS}x/diff/?against=y"),
        ("post", f"{DATASETS}x/versions/"),
        ("post", MERGES),
    ],
)
def test_version_routes_need_a_login(anonymous, method, url):
    assert_error_body(getattr(anonymous, method)(url), 401, "UNAUTHENTICATED")


def test_edit_merge_lineage_and_diff(api, data_root):
    root = upload(api, "faq", INSTRUCTION_ROWS)
    assert (root["family"], root["version"], root["parent"], root["operation"]) == (
        "faq",
        1,
        None,
        {"op": "upload", "params": {}},
    )
    v2 = created(
        api.post(f"{DATASETS}faq/versions/", {"rows": [*INSTRUCTION_ROWS[:2], EXTRA]}, format="json")
    )
    assert (v2["name"], v2["family"], v2["version"], v2["parent"]) == ("faq.v2", "faq", 2, "faq")
    assert v2["operation"]["op"] == "edit"
    # An edit of an older version by number, from a multipart file, with a name.
    file = SimpleUploadedFile("x.jsonl", jsonl(INSTRUCTION_ROWS[:1]), content_type="application/jsonl")
    v3 = created(api.post(f"{DATASETS}faq.v2/versions/", {"file": file, "version": 1, "name": "faq-short"}))
    assert (v3["version"], v3["parent"], v3["rows"]) == (3, "faq", 1)

    chat = upload(api, "chat", CHAT_ROWS)
    merged = created(api.post(MERGES, {"sources": ["faq@2", "chat"]}, format="json"))
    assert (merged["name"], merged["parent"], merged["rows"], merged["format"]) == (
        "faq.v4",
        "faq.v2",
        5,
        "mixed",
    )
    assert merged["operation"]["inputs"] == [
        {"name": "faq.v2", "version": 2, "sha256": v2["sha256"]},
        {"name": "chat", "version": 1, "sha256": chat["sha256"]},
    ]

    lineage = api.get(f"{DATASETS}faq.v2/lineage/").json()
    assert [a["name"] for a in lineage["ancestors"]] == ["faq"]
    assert [c["name"] for c in lineage["children"]] == ["faq.v4"]
    assert lineage["dataset"]["operation"]["op"] == "edit"
    assert [i["name"] for i in api.get(f"{DATASETS}faq.v4/lineage/").json()["inputs"]] == ["faq.v2", "chat"]

    diff = api.get(f"{DATASETS}faq.v2/diff/", {"against": "faq", "examples": 1}).json()
    assert (diff["added"], diff["removed"], diff["changed"], diff["unchanged"]) == (1, 1, 0, 2)
    assert diff["examples"]["added"] == [EXTRA] and diff["old"]["name"] == "faq"
    # Nothing was overwritten.
    assert hashlib.sha256((data_root / "datasets/faq.jsonl").read_bytes()).hexdigest() == root["sha256"]


def test_unknown_parents_are_404_and_bad_bodies_400_with_actionable_messages(api):
    upload(api, "faq", INSTRUCTION_ROWS)
    body = assert_error_body(
        api.post(f"{DATASETS}nope/versions/", {"rows": [EXTRA]}, format="json"), 404, "NOT_FOUND"
    )
    assert body["extra"]["field"] == "parent" and "lists them" in body["message"]
    body = assert_error_body(
        api.post(f"{DATASETS}faq/versions/", {"rows": [EXTRA], "version": 9}, format="json"),
        404,
        "NOT_FOUND",
    )
    assert body["extra"]["field"] == "parent" and "no version 9" in body["message"]
    assert body["extra"]["versions"] == [1]
    body = assert_error_body(api.post(f"{DATASETS}faq/versions/", {}, format="json"), 400, "INVALID_ARGUMENT")
    assert body["extra"]["field"] == "file"
    body = assert_error_body(
        api.post(MERGES, {"sources": ["faq", "gone"]}, format="json"), 404, "NOT_FOUND"
    )
    assert body["extra"]["field"] == "sources" and "'gone'" in body["message"]
    body = assert_error_body(api.post(MERGES, {"sources": ["faq"]}, format="json"), 400, "INVALID_ARGUMENT")
    assert body["extra"]["field"] == "sources"
    body = assert_error_body(api.get(f"{DATASETS}faq/diff/", {"against": "faq@3"}), 404, "NOT_FOUND")
    assert body["extra"]["field"] == "against"
    assert_error_body(api.get(f"{DATASETS}gone/lineage/"), 404, "NOT_FOUND")
    assert_error_body(
        api.post(f"{DATASETS}faq/versions/", {"rows": [EXTRA], "name": "faq"}, format="json"),
        409,
        "ALREADY_EXISTS",
    )
    assert Dataset.objects.count() == 1


def test_a_dataset_named_merge_does_not_shadow_the_merge_route(api):
    upload(api, "merge", INSTRUCTION_ROWS)
    upload(api, "b", CHAT_ROWS)
    assert api.get(f"{DATASETS}merge/").json()["name"] == "merge"
    assert (
        created(api.post(MERGES, {"sources": ["merge", "b"], "name": "m2"}, format="json"))["parent"]
        == "merge"
    )


def test_preview_and_download_carry_row_metadata(api, data_root):
    upload(api, "judged", INSTRUCTION_ROWS[:2])
    meta = [{"strategy": "seed", "topic_path": ["a", "b"], "judge": {"scores": {"helpful": 5}, "mean": 4.5}}]
    (data_root / "datasets/judged.meta.jsonl").write_text(json.dumps(meta[0]) + "\n")
    rows = api.get(f"{DATASETS}judged/preview/").json()["rows"]
    assert rows == [{**INSTRUCTION_ROWS[0], "metadata": meta[0]}, {**INSTRUCTION_ROWS[1], "metadata": None}]
    response = api.get(f"{DATASETS}judged/download/", {"metadata": "true", "format": "chat"})
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [line["metadata"] for line in lines] == [meta[0], None] and "messages" in lines[0]
    plain = b"".join(api.get(f"{DATASETS}judged/download/").streaming_content)
    assert plain == jsonl(INSTRUCTION_ROWS[:2])  # as stored, without metadata
    # Without a sidecar the preview rows are as stored.
    upload(api, "plain", INSTRUCTION_ROWS[:1])
    assert api.get(f"{DATASETS}plain/preview/").json()["rows"] == INSTRUCTION_ROWS[:1]


def test_legacy_list_datasets_lists_versions_by_file_name(api):
    upload(api, "faq", INSTRUCTION_ROWS)
    created(api.post(f"{DATASETS}faq/versions/", {"rows": [EXTRA]}, format="json"))
    listed = api.get("/list_datasets").json()
    assert listed == {
        "status": "success",
        "files": [
            {"name": "faq.jsonl", "size_bytes": len(jsonl(INSTRUCTION_ROWS)), "num_rows": 3},
            {"name": "faq.v2.jsonl", "size_bytes": len(jsonl([EXTRA])), "num_rows": 1},
        ],
    }


def test_the_schema_has_the_version_operations(api):
    paths = json.loads(api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)[
        "paths"
    ]
    assert {
        "/api/v1/datasets/{name}/lineage/",
        "/api/v1/datasets/{name}/diff/",
        "/api/v1/datasets/{name}/versions/",
        "/api/v1/dataset-merges/",
    } <= set(paths)
    output = paths["/api/v1/dataset-merges/"]["post"]["responses"]["201"]["content"]["application/json"][
        "schema"
    ]
    assert output["$ref"].endswith("/DatasetOutput")
