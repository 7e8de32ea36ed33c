"""Offline checks of deploy/: Dockerfiles, compose and the Helm chart (no Docker, no cluster).

Shared here: the paths, the Kubernetes versions the manifests are validated against, and
chart rendering through helm-python-sdk (Helm's own Go library, so templates render
exactly as `helm template` would).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKER = DEPLOY / "docker"
COMPOSE_DIR = DEPLOY / "compose"
CHART = DEPLOY / "helm" / "synthtune"
YAMLLINT_CONFIG = DEPLOY / ".yamllint.yaml"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest that
# kubernetes-validate bundles: an API removed in between fails one of the two.
K8S_VERSIONS = ("1.30.0", "1.37.0")

RELEASE = "st"
NAMESPACE = "ml"

# Recognisable secret values passed to every render, so the tests can look for leaks.
TEST_SECRETS = {
    "grpcToken": "t3st-grpc-token-7d1f0c9a2b",
    "djangoSecretKey": "t3st-django-key-5e8a1c3f7b9d2e4a6c8b0d1f3e5a7c9b",
    "postgresPassword": "t3st-postgres-pw-4c2a9e",
    "metricsToken": "t3st-metrics-token-8b6d4f",
}
SECRET_VALUES = tuple(TEST_SECRETS.values())


def deep_merge(base: dict, override: dict) -> dict:
    """`base` with `override` merged in (dicts recursively; anything else replaced)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


# The value sets the chart is checked with.
ALL_ON = load_yaml(CHART / "ci" / "all-on-values.yaml")
SCENARIOS: dict[str, dict] = {
    "default": {"secrets": TEST_SECRETS},
    "all-on": deep_merge(ALL_ON, {"secrets": TEST_SECRETS}),
    # Production-shaped: your database and Secret, vLLM run elsewhere, CPU trainer,
    # no metrics, no NetworkPolicy.
    "external": {
        "secrets": {"existingSecret": "synthtune-prod"},
        "postgresql": {"enabled": False},
        "vllm": {
            "enabled": False,
            "adapterRoot": "/models-pvc/adapters",
            "external": {
                "url": "http://vllm.inference.svc:8000",
                "replicas": ["http://vllm-a.inference.svc:8000", "http://vllm-b.inference.svc:8000"],
            },
        },
        "trainer": {"gpu": {"enabled": False}, "tolerations": []},
        "metrics": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "dataRoot": {"persistence": {"existingClaim": "synthtune-data"}},
    },
    # Runs train as Kubeflow Trainer v2 TrainJobs on GPU nodes (the chart's TrainingRuntime).
    "kubeflow": {"secrets": TEST_SECRETS, "trainer": {"launcher": "kubeflow"}},
}


@cache
def _chart():
    import helm_python as helm

    return helm.Chart.load(str(CHART))


def render_raw(values: dict | None) -> dict[str, str]:
    """Template path -> rendered text, NOTES.txt included, as `helm install` would render."""
    return _chart().render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render(values: dict | None) -> list[dict]:
    """Every manifest the chart renders with `values`, each tagged with its template path."""
    docs = []
    for template, text in sorted(render_raw(values).items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template__"] = template
                docs.append(doc)
    return docs


@cache
def _rendered(scenario: str) -> tuple[dict, ...]:
    return tuple(render(SCENARIOS[scenario]))


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request) -> str:
    return request.param


@pytest.fixture
def manifests(scenario) -> list[dict]:
    """The manifests of one scenario (rendered once per session; each test gets a copy)."""
    return copy.deepcopy(list(_rendered(scenario)))


def manifests_of(scenario: str) -> list[dict]:
    return copy.deepcopy(list(_rendered(scenario)))
