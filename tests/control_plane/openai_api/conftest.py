"""/v1/ fixtures: the official openai SDK pointed at Django's live server, and the real trainer."""

from __future__ import annotations

import openai
import pytest
from rest_framework.authtoken.models import Token

from tests.control_plane.runs.conftest import trainer, trainer_down  # noqa: F401 (fixtures)


@pytest.fixture
def token(user) -> str:
    return Token.objects.create(user=user).key


def sdk_client(live_server, api_key: str) -> openai.OpenAI:
    # No retries: a test must see the first answer, not the SDK's retry of a 5xx.
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=api_key, max_retries=0, timeout=120)


@pytest.fixture
def sdk(live_server, token) -> openai.OpenAI:
    with sdk_client(live_server, token) as client:
        yield client
