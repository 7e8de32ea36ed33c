"""SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS: off by default; on, it opens the old routes (and only
them) to old clients that have no login. The default (a login wanted) is also checked against
the running stack in test_routes."""

from __future__ import annotations

import json

import pytest

from control_plane.config import load_config

pytestmark = pytest.mark.django_db


def test_the_setting_is_off_unless_set(monkeypatch):
    monkeypatch.delenv("SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS", raising=False)
    load_config.cache_clear()
    try:
        assert load_config().legacy_allow_anonymous is False
        monkeypatch.setenv("SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS", "true")
        load_config.cache_clear()
        assert load_config().legacy_allow_anonymous is True
    finally:
        load_config.cache_clear()


def test_anonymous_callers_only_when_allowed_and_only_on_the_old_routes(client, settings):
    settings.SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS = False
    refused = client.get("/list_datasets")
    assert refused.status_code == 401 and refused.json()["status"] == "error"

    settings.SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS = True
    assert client.get("/list_datasets").json() == {"status": "success", "files": []}
    assert client.get("/list_exported_adapters").json() == {"status": "success", "adapters": []}
    # Old clients POST JSON without a CSRF token; with no session there is nothing to forge.
    logged = client.post("/event_log", json.dumps({"event": "open"}), content_type="application/json")
    assert logged.json() == {"status": "ok"}
    # A wrong token is still refused, and /api/v1 still wants a login.
    assert client.get("/list_datasets", HTTP_AUTHORIZATION="Token wrong").status_code == 401
    assert client.get("/api/v1/datasets/").status_code == 401


OLD_ROUTES = {
    "/generate_data": "post",
    "/list_datasets": "get",
    "/finetune": "post",
    "/finetune_status": "get",
    "/list_exported_adapters": "get",
    "/hotload_adapter": "post",
    "/unload_adapter": "post",
    "/compare": "post",
    "/event_log": "post",
}


def test_the_old_routes_are_in_the_openapi_schema_with_the_old_failure_body(client, user):
    client.force_login(user)
    paths = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)["paths"]
    old = {path: set(operations) & {"get", "post"} for path, operations in paths.items()
           if not path.startswith(("/api/", "/v1/"))}  # /v1/: OpenAI's routes
    assert old == {path: {method} for path, method in OLD_ROUTES.items()}
    for path, method in OLD_ROUTES.items():
        operation = paths[path][method]
        assert operation["tags"] == ["legacy"]
        if method == "post" and path != "/event_log":
            assert list(operation["requestBody"]["content"]) == ["application/json"], path  # as the old app read them
        for status, response in operation["responses"].items():
            if int(status) >= 400 and status != "414":
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LegacyError"}
