"""The old routes' answers in the OpenAPI schema are the old app's, key by key and type by type
(old_app.py, cited to the old source), plus only synthtune's documented additions."""

from __future__ import annotations

import json

import pytest

from tests.control_plane.legacy import old_app

NONE = old_app.NONE
# JSON Schema type -> the Python types old_app names.
_TYPES = {"string": {str}, "integer": {int}, "object": {dict}, "array": {list}, "boolean": {bool}}


_SCHEMA: dict = {}  # generated once for the module (seconds each time)


def _schema(client, user) -> dict:
    if not _SCHEMA:
        client.force_login(user)
        _SCHEMA.update(json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content))
    return _SCHEMA


def _answer(schema: dict, path: str, method: str, status: str = "200") -> dict:
    return schema["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def _types(prop: dict) -> set:
    return _TYPES[prop["type"]] | ({NONE} if prop.get("nullable") else set())


def _assert_matches(answer: dict, shape: old_app.Shape, extra: old_app.Shape | None = None) -> None:
    expected = {**shape, **(extra or {})}
    assert set(answer["properties"]) == set(expected) == set(answer["required"])
    for key, types in expected.items():
        assert _types(answer["properties"][key]) == set(types if isinstance(types, tuple) else (types,)), key


@pytest.mark.django_db
def test_every_old_answer_in_the_schema_has_the_old_keys_and_types(client, user):
    schema = _schema(client, user)
    generate = _answer(schema, "/generate_data", "post")
    _assert_matches(generate, old_app.GENERATE_DATA)
    _assert_matches(generate["properties"]["meta"], old_app.GENERATE_DATA_META, old_app.EXTRA_GENERATE_DATA_META)
    datasets = _answer(schema, "/list_datasets", "get")
    _assert_matches(datasets, old_app.LIST_DATASETS)
    _assert_matches(datasets["properties"]["files"]["items"], old_app.DATASET_FILE)
    _assert_matches(_answer(schema, "/finetune", "post"), old_app.FINETUNE)
    status, not_found = _answer(schema, "/finetune_status", "get")["oneOf"]
    _assert_matches(status, old_app.FINETUNE_STATUS, old_app.EXTRA_FINETUNE_STATUS)
    assert set(status["properties"]["status"]["enum"]) == old_app.FINETUNE_STATUSES
    _assert_matches(not_found, old_app.FINETUNE_NOT_FOUND)
    adapters = _answer(schema, "/list_exported_adapters", "get")
    _assert_matches(adapters, old_app.LIST_EXPORTED_ADAPTERS)
    _assert_matches(adapters["properties"]["adapters"]["items"], old_app.EXPORTED_ADAPTER)
    _assert_matches(_answer(schema, "/hotload_adapter", "post"), old_app.HOTLOAD_ADAPTER)
    _assert_matches(_answer(schema, "/unload_adapter", "post"), old_app.UNLOAD_ADAPTER)
    _assert_matches(_answer(schema, "/compare", "post"), old_app.COMPARE, old_app.EXTRA_COMPARE)
    _assert_matches(_answer(schema, "/event_log", "post"), old_app.EVENT_LOG)
    _assert_matches(schema["components"]["schemas"]["LegacyError"], old_app.ERROR)


@pytest.mark.django_db
def test_the_old_bodies_require_what_the_routes_refuse_to_go_without(client, user):
    schemas = _schema(client, user)["components"]["schemas"]
    # app.py:165-169, 199, 250, 289, 311, 330 (no SYNTHTUNE_DEFAULT_ADAPTER_NAME in the tests).
    assert schemas["LegacyGenerateDataRequest"]["required"] == ["base_url", "model", "bearer_token"]
    assert schemas["LegacyFinetuneRequest"]["required"] == ["selected_files"]
    assert schemas["LegacyHotloadAdapterRequest"]["required"] == ["vllm_url", "exported_adapter"]
    assert schemas["LegacyUnloadAdapterRequest"]["required"] == ["vllm_url", "adapter_name"]
    assert schemas["LegacyCompareRequest"]["required"] == ["prompt", "base_url", "base_model", "ft_model"]
    # The rest may be null or left out (the old app read `data.get(x) or default`).
    assert schemas["LegacyGenerateDataRequest"]["properties"]["num_samples"]["nullable"] is True
