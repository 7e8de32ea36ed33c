"""Helpers for the deployments tests: training rows, URLs, DB checks."""

from __future__ import annotations

from control_plane.deployments.models import Deployment

BASE_MODEL = "tiny-phi3"
ANSWER = "Aye aye, captain."

DEPLOYMENTS = "/api/v1/deployments/"
SERVED = "/api/v1/served-models/"
COMPARE = "/api/v1/compare/"
BATCH = "/api/v1/compare/batch/"

_TOPICS = ["the sea", "a ship", "the wind", "a map", "the stars", "an island", "a parrot", "the tide"]


def pattern_rows(count: int) -> list[dict]:
    """Varied instructions that all have one answer: what a fine-tune learns fast."""
    return [
        {"instruction": f"Say something about {_TOPICS[n % len(_TOPICS)]}, number {n}.", "output": ANSWER}
        for n in range(count)
    ]


def load_url(name: str) -> str:
    return f"/api/v1/adapters/{name}/load/"


def unload_url(name: str) -> str:
    return f"/api/v1/adapters/{name}/unload/"


def live_rows() -> list[Deployment]:
    """Rows that claim something is (being) loaded: none may be left by a failed load."""
    return list(Deployment.objects.filter(state__in=Deployment.ACTIVE_STATES))
