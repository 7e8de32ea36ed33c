from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared plumbing: errors, gRPC clients, request ids, SSE, the worker."""

    name = "control_plane.core"
    label = "core"
