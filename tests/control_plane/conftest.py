"""Control-plane fixtures: settings pointed at a per-test data root, API clients, the real
datagen service (a process on a free port), and the scriptable teacher endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.control_plane.factories import UserFactory
from tests.support.fake_openai import FakeOpenAI
from tests.support.procs import TEST_GRPC_TOKEN, free_port, running_service


@pytest.fixture(autouse=True)
def cp_settings(settings, data_root: Path):
    """Every test: its own data root, the test gRPC token, and no datagen or serving proxy until a
    test starts one."""
    settings.SYNTHTUNE_DATA_ROOT = data_root
    settings.SYNTHTUNE_GRPC_TOKEN = TEST_GRPC_TOKEN
    settings.SYNTHTUNE_DATAGEN_ADDR = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings.SYNTHTUNE_SERVING_PROXY_ADDR = f"127.0.0.1:{free_port()}"  # nor there, until a test starts one
    settings.SYNTHTUNE_SSE_POLL_S = 0.05
    settings.SYNTHTUNE_SSE_MAX_S = 5.0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
    return settings


@pytest.fixture
def datagen(cp_settings, data_root: Path, tmp_path: Path):
    """The real datagen service on the test's data root; settings point at it."""
    with running_service(
        "datagen_svc",
        listen_var="SYNTHTUNE_DATAGEN_LISTEN",
        env={"SYNTHTUNE_DATA_ROOT": str(data_root), "SYNTHTUNE_DATAGEN_RETRY_INITIAL_S": "0.05"},
        log_path=tmp_path / "datagen.log",
    ) as service:
        cp_settings.SYNTHTUNE_DATAGEN_ADDR = service.address
        yield service


@pytest.fixture
def teacher(vllm_server):
    """The teacher endpoint: the session's real vLLM CPU server with the tiny model."""
    return vllm_server


@pytest.fixture
def recording_teacher():
    """A fake endpoint that records the requests it got: only for checking what was sent
    (the bearer token), which a real vLLM can't show us."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()
