"""Deployments (an adapter loaded into one vLLM) and comparisons (base vs adapter outputs).

vLLM keeps runtime-loaded adapters in memory only: a restarted vLLM has lost them.
So a deployment row says what was loaded, and reconciliation (services.deployment_reconcile,
on every list/retrieve and periodically in the worker) keeps its state truthful against
what the proxy's ListServedModels reports.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from control_plane.runs.models import Adapter


class Deployment(models.Model):
    class State(models.TextChoices):
        # Reserved for a load still in flight. Today's load writes rows only once the proxy
        # has answered (a row written before the call is the half state a crash would leave).
        LOADING = "loading"
        LOADED = "loaded"
        UNLOADED = "unloaded"
        # Only for a replica that failed while others loaded; a load that fails outright writes nothing.
        FAILED = "failed"
        # Recorded as loaded, but the vLLM no longer serves it (restarted) or can't be reached.
        LOST = "lost"

    ACTIVE_STATES = (State.LOADING, State.LOADED)
    # What reconciliation looks at: a lost deployment comes back if vLLM serves it again.
    RECONCILED_STATES = (State.LOADED, State.LOST)

    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, related_name="deployments")
    target = models.CharField(max_length=512, help_text="The vLLM base URL, e.g. http://vllm:8000.")
    served_name = models.CharField(
        max_length=256, blank=True, help_text="The (versioned) model name vLLM serves the adapter under."
    )
    state = models.CharField(max_length=16, choices=State, default=State.LOADED)
    error = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    loaded_at = models.DateTimeField(null=True, blank=True)
    unloaded_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(
        null=True, blank=True, help_text="When the state was last checked against vLLM."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=["state"]), models.Index(fields=["target", "served_name"]))
        constraints = (
            # One live record per served model on one vLLM: a retried or concurrent load (or the
            # reconciler adopting it) finds the existing row instead of adding a second.
            models.UniqueConstraint(
                fields=["target", "served_name"],
                condition=models.Q(state__in=["loading", "loaded"]),
                name="deployment_one_live_per_served_name",
            ),
        )

    def __str__(self) -> str:
        return f"{self.served_name or self.adapter.name} @ {self.target} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES


class Comparison(models.Model):
    """A base-vs-adapter comparison as it was asked and answered (one prompt, or a batch)."""

    class Kind(models.TextChoices):
        ONE = "one"
        BATCH = "batch"

    kind = models.CharField(max_length=8, choices=Kind)
    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="comparisons")
    served_name = models.CharField(max_length=256, blank=True)
    target = models.CharField(max_length=512, blank=True)
    prompt_format = models.CharField(max_length=32, blank=True)
    # What was asked (prompt or dataset, limit, sampling), never the vLLM token.
    request = models.JSONField(default=dict, blank=True)
    # One: {"base": ..., "adapter": ...}. Batch: {"rows": [...]}.
    result = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="Batch: per side metrics.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="comparisons"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.kind} comparison of {self.adapter.name} #{self.pk}"
