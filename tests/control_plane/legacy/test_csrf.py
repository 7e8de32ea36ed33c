"""CSRF on the old routes. With SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS on they ignore sessions, so an
old page's JavaScript (no CSRF token) works in a browser that also holds an admin session, and a
forged cross-site call gains nothing over an anonymous one. Off, a session call without a CSRF
token is still refused."""

from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

CSRF_SECRET = "a" * 32  # what Django keeps in the csrftoken cookie


@pytest.fixture
def admin_browser(staff) -> Client:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    return browser


def post(browser: Client, path: str, body: dict, **headers):
    return browser.post(path, json.dumps(body), content_type="application/json", **headers)


def test_with_anonymous_allowed_an_admin_session_without_a_csrf_token_is_not_refused(admin_browser, cp_settings):
    cp_settings.SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS = True
    compare = post(admin_browser, "/compare", {})
    assert (compare.status_code, compare.json()) == (400, {"status": "error", "message": "prompt is required"})
    finetune = post(admin_browser, "/finetune", {"selected_files": []})
    assert finetune.status_code == 400
    assert finetune.json() == {"status": "error", "message": "selected_files must be a non-empty list"}
    assert post(admin_browser, "/event_log", {"event": "open"}).json() == {"status": "ok"}


def test_without_anonymous_a_session_call_without_a_csrf_token_is_still_refused(admin_browser, cp_settings):
    cp_settings.SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS = False
    refused = post(admin_browser, "/compare", {})
    assert refused.status_code == 403
    assert refused.json()["status"] == "error" and "CSRF" in refused.json()["message"]
    # With its token the same session goes through to the route's own checks.
    admin_browser.cookies["csrftoken"] = CSRF_SECRET
    allowed = post(admin_browser, "/compare", {}, HTTP_X_CSRFTOKEN=CSRF_SECRET)
    assert (allowed.status_code, allowed.json()["message"]) == (400, "prompt is required")
    # A safe method needs no token.
    assert admin_browser.get("/list_datasets").status_code == 200
