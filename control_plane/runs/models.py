"""Fine-tuning runs, their stored events (the metric history), and the adapters they export.

The trainer service owns the work and the files (runs/, adapters/ under the data
root); these rows are the system of record for what was asked, what happened and
what was produced. The worker keeps them in step with the trainer's watch streams.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from control_plane.datasets.models import Dataset


class Run(models.Model):
    class State(models.TextChoices):
        # OpenAI's fine-tuning job states.
        VALIDATING = "validating"
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    run_id = models.CharField(max_length=64, unique=True, help_text="The trainer service's id.")
    datasets = models.ManyToManyField(Dataset, related_name="runs")
    eval_datasets = models.ManyToManyField(
        Dataset,
        related_name="eval_runs",
        blank=True,
        help_text="A separate eval split (OpenAI's validation_file): the run evaluates on exactly these "
        "rows and holds none of its datasets out. Empty: eval_fraction of the datasets is held out.",
    )
    base_model = models.CharField(max_length=256)
    hyperparameters = models.JSONField(
        default=dict, blank=True, help_text="As requested (unset ones omitted)."
    )
    config = models.JSONField(
        default=dict, blank=True, help_text="As resolved by the trainer, defaults filled in."
    )
    dataset_reports = models.JSONField(
        default=list,
        blank=True,
        help_text="The trainer's report per dataset: path, sha256, rows, format, size.",
    )
    eval_dataset_reports = models.JSONField(
        default=list, blank=True, help_text="The same report per eval dataset."
    )
    # From the trainer's validation: the split, and rows longer than max_length (they get truncated).
    train_rows = models.PositiveIntegerField(default=0)
    eval_rows = models.PositiveIntegerField(default=0)
    truncated_rows = models.PositiveIntegerField(default=0)
    adapter_name = models.CharField(
        max_length=128, blank=True, help_text="Requested stem of the adapter name."
    )
    merge_full_model = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State, default=State.VALIDATING)
    error = models.TextField(blank=True)
    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(default=0)
    epoch = models.FloatField(default=0.0)
    prompt_format = models.CharField(max_length=32, blank=True)
    queue_position = models.PositiveIntegerField(default=0)
    # Training past one process: the step the latest resume went on from (0: never resumed),
    # and how often the trainer resumed the run by itself after its process died.
    resumed_from_step = models.PositiveIntegerField(default=0)
    resumes = models.PositiveIntegerField(default=0)
    # Latest step/eval values while running; the trainer's final metrics once finished.
    metrics = models.JSONField(default=dict, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="runs"
    )
    # The last event stored: the worker resumes the watch stream after it.
    last_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=["state"]), models.Index(fields=["base_model"]))

    def __str__(self) -> str:
        return f"{self.run_id} ({self.base_model})"

    @property
    def is_finished(self) -> bool:
        return self.state in self.TERMINAL_STATES

    @property
    def _distributed(self) -> dict[str, Any]:
        return self.config.get("hyperparameters", {}).get("distributed", {})

    @property
    def world_size(self) -> int:
        """Processes the run trains in (from the trainer's resolved config; 1 until it is known)."""
        return int(self._distributed.get("world_size") or 1)

    @property
    def effective_batch_size(self) -> int | None:
        """batch x accumulation x world size, as the trainer resolved it."""
        value = self._distributed.get("effective_batch_size")
        return int(value) if value else None

    @property
    def percent(self) -> int:
        if self.state == self.State.SUCCEEDED:
            return 100
        return min(100, round(100 * self.step / self.max_steps)) if self.max_steps else 0


class RunEvent(models.Model):
    """One event of a run's watch stream, stored as received. Step and eval events are the
    run's metric history (the loss curve)."""

    class Type(models.TextChoices):
        STATE_CHANGED = "state_changed"
        STEP = "step"
        EVAL = "eval"
        LOG = "log"
        EXPORTED = "exported"
        RESUMED = "resumed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    type = models.CharField(max_length=32, choices=Type)
    payload = models.JSONField(default=dict)
    time = models.DateTimeField()

    class Meta:
        ordering = ("run", "seq")
        constraints = (models.UniqueConstraint(fields=["run", "seq"], name="runevent_unique_seq_per_run"),)
        indexes = (models.Index(fields=["run", "type", "seq"]),)

    def __str__(self) -> str:
        return f"{self.run.run_id}#{self.seq} {self.type}"

    def as_dict(self) -> dict[str, Any]:
        """The event as the API and the SSE stream show it."""
        return {"seq": self.seq, "type": self.type, "time": self.time.isoformat(), "payload": self.payload}


class Adapter(models.Model):
    """An exported LoRA adapter: adapters/<name>/ under the data root, with its manifest."""

    name = models.CharField(max_length=128, unique=True, help_text="Versioned, e.g. tiny-phi3-lora-v1.")
    # Relative to the data root, e.g. adapters/tiny-phi3-lora-v1 (validated with synthtune.paths).
    path = models.CharField(max_length=512)
    # One run exports at most one adapter: `run.adapter` is the reverse side.
    run = models.OneToOneField(Run, null=True, on_delete=models.SET_NULL, related_name="adapter")
    base_model = models.CharField(max_length=256)
    prompt_format = models.CharField(max_length=32, blank=True)
    weights_sha256 = models.CharField(max_length=64)
    merged_model_path = models.CharField(max_length=512, blank=True)
    manifest = models.JSONField(default=dict, blank=True, help_text="manifest.json as exported.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=["base_model"]),)

    def __str__(self) -> str:
        return self.name
