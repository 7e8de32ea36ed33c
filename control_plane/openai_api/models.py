"""What OpenAI's fine-tuning API keeps on a job that a synthtune run has no field for."""

from __future__ import annotations

from django.db import models

from control_plane.runs.models import Run


class JobMetadata(models.Model):
    """A job's `metadata` (OpenAI: at most 16 string pairs), for runs started through /v1/."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="openai_metadata")
    values = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"metadata of {self.run.run_id}"
