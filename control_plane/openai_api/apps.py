from django.apps import AppConfig


class OpenAIApiConfig(AppConfig):
    """OpenAI's fine-tuning, files, models and inference API under /v1/, on synthtune's services."""

    name = "control_plane.openai_api"
    label = "openai_api"
