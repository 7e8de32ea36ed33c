"""The worker's part for deployments: check them against vLLM every SYNTHTUNE_RECONCILE_S.

The worker runs one thread per pending key; this follower offers its one key only when a
check is due, and each check is one short call, so a vLLM restart shows up as `lost`
within about that interval even when nobody looks at the list.
"""

from __future__ import annotations

import time

from django.conf import settings

from control_plane.deployments import services

KEY = "reconcile"


class ReconcileFollower:
    name = "deployments"

    def __init__(self) -> None:
        self._next_at = 0.0

    def pending(self) -> list[str]:
        return [KEY] if time.monotonic() >= self._next_at else []

    def follow(self, key: str) -> None:
        """One reconciliation; raises synthtune.errors types when the proxy is down (the worker
        then retries with backoff)."""
        self._next_at = time.monotonic() + settings.SYNTHTUNE_RECONCILE_S
        services.deployment_reconcile(include_default_targets=True)
