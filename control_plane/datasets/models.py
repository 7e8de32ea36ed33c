"""Datasets and the generation jobs that produce them.

The files live under the data root; these rows are the system of record for
what they are. Endpoint tokens are never stored here: `Dataset.params` is the
generation request without its token.

Versions: every dataset row is one immutable version. A transformation (curate,
merge, edit) makes a new row naming its `parent` and the `operation` with its
parameters; a root (generated or uploaded) is version 1 of its own `family`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class Dataset(models.Model):
    class Source(models.TextChoices):
        GENERATED = "generated"
        UPLOADED = "uploaded"

    class Status(models.TextChoices):
        GENERATING = "generating"
        READY = "ready"
        FAILED = "failed"
        # Stopped before its target; the rows so far are kept and the job can be resumed.
        CANCELLED = "cancelled"

    class Format(models.TextChoices):
        INSTRUCTION = "instruction"  # the old app's {"instruction", "output"}
        CHAT = "chat"  # OpenAI's {"messages": [...]}
        MIXED = "mixed"  # a file holding both

    name = models.CharField(max_length=128, unique=True)
    # Relative to the data root, e.g. datasets/support.jsonl (validated with synthtune.paths).
    path = models.CharField(max_length=512)
    rows = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=16, choices=Format, default=Format.INSTRUCTION)
    source = models.CharField(max_length=16, choices=Source)
    params = models.JSONField(default=dict, blank=True, help_text="Generation request, without its token.")
    status = models.CharField(max_length=16, choices=Status)
    error = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="datasets"
    )
    # Lineage (control_plane.datasets.versions): the root's name, the version within it,
    # the version this one was made from, and how: {"op", "params"} (merge adds "inputs").
    family = models.CharField(max_length=128, db_index=True, help_text="The root dataset's name.")
    version = models.PositiveIntegerField(default=1)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    operation = models.JSONField(default=dict, blank=True, help_text='{"op", "params"} that made it.')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=["status"]), models.Index(fields=["source"]))
        constraints = (
            models.UniqueConstraint(fields=["family", "version"], name="dataset_unique_version_per_family"),
        )

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        # Every creation path (generate, upload, a version) gets lineage fields: a row made
        # without them is a root, version 1 of its own family.
        if not self.family:
            self.family = self.name
        if not self.operation:
            op = "generate" if self.source == self.Source.GENERATED else "upload"
            self.operation = {"op": op, "params": {}}
        super().save(*args, **kwargs)

    @property
    def ref(self) -> dict[str, Any]:
        """The exact version, as runs and adapter manifests name it."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


class GenerationJob(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    job_id = models.CharField(max_length=64, unique=True, help_text="The datagen service's id.")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="jobs")
    state = models.CharField(max_length=16, choices=State, default=State.QUEUED)
    target_rows = models.PositiveIntegerField(default=0)
    kept = models.PositiveIntegerField(default=0)
    dropped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    # Tokens spent on the judge endpoint (the two above are the teacher's).
    judge_prompt_tokens = models.PositiveBigIntegerField(default=0)
    judge_completion_tokens = models.PositiveBigIntegerField(default=0)
    report = models.JSONField(
        default=dict,
        blank=True,
        help_text='The filters\' report: {"dropped_by": {check: rows}, "near_dup_clusters", "judged", '
        '"judge_failures"}.',
    )
    # Relative to the data root: one JSON line per dataset row (provenance, the judge's verdict).
    metadata_path = models.CharField(max_length=512, blank=True)
    error = models.TextField(blank=True)
    # The last event stored: the worker resumes the watch stream after it.
    last_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=["state"]),)

    def __str__(self) -> str:
        return f"{self.job_id} ({self.dataset.name})"

    @property
    def is_finished(self) -> bool:
        return self.state in self.TERMINAL_STATES

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.kept / self.target_rows)) if self.target_rows else 0


class JobEvent(models.Model):
    """One event of a job's watch stream, stored as received."""

    class Type(models.TextChoices):
        STATE_CHANGED = "state_changed"
        PROGRESS = "progress"
        ROW_REJECTED = "row_rejected"
        DATASET_WRITTEN = "dataset_written"
        JUDGE_FAILED = "judge_failed"  # the row was kept unjudged

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    type = models.CharField(max_length=32, choices=Type)
    payload = models.JSONField(default=dict)
    time = models.DateTimeField()

    class Meta:
        ordering = ("job", "seq")
        constraints = (models.UniqueConstraint(fields=["job", "seq"], name="jobevent_unique_seq_per_job"),)

    def __str__(self) -> str:
        return f"{self.job.job_id}#{self.seq} {self.type}"

    def as_dict(self) -> dict[str, Any]:
        """The event as the API and the SSE stream show it."""
        return {"seq": self.seq, "type": self.type, "time": self.time.isoformat(), "payload": self.payload}
