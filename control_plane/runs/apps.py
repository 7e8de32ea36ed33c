from django.apps import AppConfig


class RunsConfig(AppConfig):
    """Fine-tuning runs on the trainer service, their events, and the adapters they export."""

    name = "control_plane.runs"
    label = "runs"
