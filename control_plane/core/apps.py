from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    """Shared plumbing: errors, gRPC clients, request ids, SSE, the worker."""

    name = "control_plane.core"
    label = "core"

    def ready(self) -> None:
        from control_plane.core.authentication import connect_signals

        connect_signals()


class SynthtuneAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site (control_plane.core.admin_site): the pipeline home page.
    Named in INSTALLED_APPS instead of django.contrib.admin."""

    default = False  # not control_plane.core's own config: that stays CoreConfig
    default_site = "control_plane.core.admin_site.SynthtuneAdminSite"
