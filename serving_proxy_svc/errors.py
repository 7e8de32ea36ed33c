"""Statuses the shared error family (synthtune.errors) has no class for, used for vLLM's answers."""

from __future__ import annotations

from synthtune.errors import SynthtuneError


class Unauthenticated(SynthtuneError):
    """vLLM refused the vLLM token (its --api-key); never the proxy's own gRPC token."""

    code = "UNAUTHENTICATED"


class PermissionDenied(SynthtuneError):
    code = "PERMISSION_DENIED"


class Internal(SynthtuneError):
    code = "INTERNAL"
