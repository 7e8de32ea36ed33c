"""API tokens with the short-lived cache (control_plane.core.authentication): how soon a revoked
token or a deactivated user is refused, with the cache on, off, and in the process that revoked."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from control_plane.core import authentication
from control_plane.core.authentication import CachedTokenAuthentication
from tests.control_plane.factories import UserFactory
from tests.control_plane.helpers import assert_error_body

pytestmark = pytest.mark.django_db
URL = "/api/v1/deployments/?reconcile=false"  # authenticated, and asks no service
TTL_S = 5.0


@pytest.fixture
def clock(monkeypatch, cp_settings):
    """The cache's clock, moved on by hand; the TTL set to TTL_S."""
    cp_settings.SYNTHTUNE_TOKEN_CACHE_S = TTL_S
    now = [1000.0]
    monkeypatch.setattr(authentication, "_clock", lambda: now[0])
    authentication.token_cache_clear()

    def advance(seconds: float) -> None:
        now[0] += seconds

    return advance


@pytest.fixture
def token():
    return Token.objects.create(user=UserFactory())


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _revoke_elsewhere(token: Token) -> None:
    """Delete the token as another process would: no signal reaches this process's cache."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Token._meta.db_table} WHERE {Token._meta.pk.column} = %s", [token.pk])


def test_a_token_revoked_elsewhere_is_refused_once_the_ttl_has_passed(clock, token):
    client = _client(token.key)
    assert client.get(URL).status_code == 200
    _revoke_elsewhere(token)
    clock(TTL_S - 0.5)
    assert client.get(URL).status_code == 200  # still trusted: the documented window
    clock(1.0)
    assert_error_body(client.get(URL), 401, "UNAUTHENTICATED")


def test_with_ttl_0_a_revoked_token_is_refused_at_once(clock, cp_settings, token):
    cp_settings.SYNTHTUNE_TOKEN_CACHE_S = 0
    client = _client(token.key)
    assert client.get(URL).status_code == 200
    _revoke_elsewhere(token)
    assert_error_body(client.get(URL), 401, "UNAUTHENTICATED")


def test_a_token_deleted_in_this_process_is_refused_at_once(clock, token):
    client = _client(token.key)
    assert client.get(URL).status_code == 200
    token.delete()
    assert_error_body(client.get(URL), 401, "UNAUTHENTICATED")


def test_a_deactivated_user_is_refused_at_once_here_and_within_the_ttl_elsewhere(clock, token):
    client = _client(token.key)
    assert client.get(URL).status_code == 200
    type(token.user).objects.filter(pk=token.user_id).update(is_active=False)  # no signal: as elsewhere
    assert client.get(URL).status_code == 200
    clock(TTL_S + 0.1)
    assert_error_body(client.get(URL), 401, "UNAUTHENTICATED")

    other = Token.objects.create(user=UserFactory())
    client = _client(other.key)
    assert client.get(URL).status_code == 200
    other.user.is_active = False
    other.user.save()  # in this process: the cache is emptied
    assert_error_body(client.get(URL), 401, "UNAUTHENTICATED")


def test_a_cached_token_costs_no_query_and_each_call_gets_its_own_user(clock, token, django_assert_num_queries):
    auth = CachedTokenAuthentication()
    first_user, first_token = auth.authenticate_credentials(token.key)
    first_user.first_name = "changed by one request"
    with django_assert_num_queries(0):
        second_user, second_token = auth.authenticate_credentials(token.key)
    assert (second_user.pk, second_token.key) == (token.user_id, token.key)
    assert second_user is not first_user and second_user.first_name != "changed by one request"
    assert second_token.user is second_user


def test_wrong_tokens_are_never_cached(clock, token, django_assert_num_queries):
    auth = CachedTokenAuthentication()
    for _ in range(2):
        with django_assert_num_queries(1), pytest.raises(AuthenticationFailed):
            auth.authenticate_credentials("0" * 40)
