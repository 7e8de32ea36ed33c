from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    """Datasets (generated or uploaded) and the generation jobs that make them."""

    name = "control_plane.datasets"
    label = "datasets"
