"""Rate limits: 429 with Retry-After in each API's error shape past SYNTHTUNE_THROTTLE_USER /
SYNTHTUNE_THROTTLE_ANON, per user and per address; off when empty; never on probes or event streams."""

from __future__ import annotations

import openai
import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from control_plane.config import ConfigError, load_config
from control_plane.datasets.models import GenerationJob
from tests.control_plane.factories import GenerationJobFactory, UserFactory
from tests.control_plane.helpers import assert_error_body

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counts():
    cache.clear()  # the counts live in the process's cache; start and leave it empty
    yield
    cache.clear()


def token_client(user, keyword: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {Token.objects.create(user=user).key}")
    return client


def assert_retry_after(reply, most: int) -> int:
    seconds = int(reply["Retry-After"])
    assert 1 <= seconds <= most, reply["Retry-After"]
    return seconds


def test_past_the_user_rate_a_call_is_429_with_retry_after_and_other_users_go_on(api, cp_settings):
    cp_settings.SYNTHTUNE_THROTTLE_USER = "3/min"
    assert [api.get("/api/v1/datasets/").status_code for _ in range(3)] == [200] * 3
    refused = api.get("/api/v1/datasets/")
    error = assert_error_body(refused, 429, "RESOURCE_EXHAUSTED")
    assert "3/min per user (SYNTHTUNE_THROTTLE_USER)" in error["message"]
    assert "Expected available in" in error["message"]
    assert_retry_after(refused, 60)
    # Each user has a count of their own.
    assert token_client(UserFactory()).get("/api/v1/datasets/").status_code == 200
    # Refused before the body is even looked at (throttles come before the view).
    assert api.post("/api/v1/datasets/", {"name": "x", "rows": []}, format="json").status_code == 429


def test_an_empty_rate_is_no_limit(api, cp_settings):
    cp_settings.SYNTHTUNE_THROTTLE_USER = ""
    cp_settings.SYNTHTUNE_THROTTLE_ANON = ""
    assert {api.get("/api/v1/datasets/").status_code for _ in range(30)} == {200}


def test_v1_answers_429_as_openai_does(user, cp_settings, live_server):
    cp_settings.SYNTHTUNE_THROTTLE_USER = "1/min"
    client = token_client(user, "Bearer")
    assert client.get("/v1/files").status_code == 200
    refused = client.get("/v1/files")
    assert refused.status_code == 429
    assert_retry_after(refused, 60)
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    # The official SDK sees its RateLimitError.
    key = Token.objects.get(user=user).key
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0, timeout=30) as sdk:
        with pytest.raises(openai.RateLimitError) as raised:
            sdk.files.list()
    assert raised.value.status_code == 429 and raised.value.response.headers["Retry-After"]


def test_old_routes_answer_429_in_their_envelope_per_anonymous_address(client, cp_settings):
    cp_settings.SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS = True
    cp_settings.SYNTHTUNE_THROTTLE_ANON = "2/min"
    assert [client.get("/list_datasets").status_code for _ in range(2)] == [200, 200]
    refused = client.get("/list_datasets")
    assert refused.status_code == 429
    assert_retry_after(refused, 60)
    body = refused.json()
    assert body["status"] == "error" and "SYNTHTUNE_THROTTLE_ANON" in body["message"]
    # Another address has its own count; X-Forwarded-For is not trusted by default (no proxies).
    assert client.get("/list_datasets", REMOTE_ADDR="10.0.0.7").status_code == 200
    assert client.get("/list_datasets", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_probes_and_event_streams_are_never_throttled(api, client, cp_settings):
    cp_settings.SYNTHTUNE_THROTTLE_USER = "1/min"
    cp_settings.SYNTHTUNE_THROTTLE_ANON = "1/min"
    job = GenerationJobFactory(state=GenerationJob.State.SUCCEEDED)
    assert api.get("/api/v1/datasets/").status_code == 200
    assert api.get("/api/v1/datasets/").status_code == 429  # this user's budget is spent
    for _ in range(3):
        # An EventSource reconnecting must not be refused: it would give up for good.
        stream = api.get(f"/api/v1/generation-jobs/{job.job_id}/events/stream/", HTTP_LAST_EVENT_ID="0")
        assert stream.status_code in (200, 204)
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_the_default_rates_are_generous_and_bad_ones_are_refused(monkeypatch):
    for name in ("SYNTHTUNE_THROTTLE_USER", "SYNTHTUNE_THROTTLE_ANON", "SYNTHTUNE_TRUSTED_PROXIES"):
        monkeypatch.delenv(name, raising=False)
    load_config.cache_clear()
    try:
        config = load_config()
        # 50 clients on one token, each calling once a second (3000/min), stay well under it.
        assert (config.throttle_user, config.throttle_anon, config.trusted_proxies) == ("6000/min", "600/min", 0)
        monkeypatch.setenv("SYNTHTUNE_THROTTLE_USER", "OFF")
        monkeypatch.setenv("SYNTHTUNE_THROTTLE_ANON", "100/hour")
        load_config.cache_clear()
        assert (load_config().throttle_user, load_config().throttle_anon) == ("", "100/hour")
        monkeypatch.setenv("SYNTHTUNE_THROTTLE_USER", "100/mango")
        load_config.cache_clear()
        with pytest.raises(ConfigError, match="SYNTHTUNE_THROTTLE_USER"):
            load_config()
    finally:
        load_config.cache_clear()
