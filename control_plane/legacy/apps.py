from django.apps import AppConfig


class LegacyConfig(AppConfig):
    """The old Flask app's routes (/generate_data, /finetune...) on synthtune's services and selectors."""

    name = "control_plane.legacy"
    label = "legacy"
