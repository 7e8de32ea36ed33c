from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    """Adapters loaded into vLLM through the serving proxy, and base-vs-adapter comparisons."""

    name = "control_plane.deployments"
    label = "deployments"
