"""The worker's part for generation jobs: follow WatchGeneration from the last stored seq."""

from __future__ import annotations

from control_plane.core.errors import NotFound
from control_plane.core.events import WATCH_DEADLINE_S
from control_plane.datasets import selectors, services
from control_plane.datasets.datagen import datagen_client, event_record
from control_plane.datasets.models import GenerationJob
from synthtune.datagen.v1 import datagen_pb2 as pb


class GenerationFollower:
    name = "generation"

    def pending(self) -> list[str]:
        return selectors.generation_job_pending_ids()

    def follow(self, key: str) -> None:
        """Store every event after the job's last_seq until the stream closes (after the
        terminal event) or its deadline passes; the worker reconnects after either."""
        last_seq = GenerationJob.objects.filter(job_id=key).values_list("last_seq", flat=True).first()
        if last_seq is None:
            return  # deleted meanwhile
        request = pb.WatchGenerationRequest(job_id=key, after_seq=last_seq)
        try:
            for event in datagen_client().stream("WatchGeneration", request, timeout_s=WATCH_DEADLINE_S):
                services.generation_event_record(job_id=key, event=event_record(event))
        except NotFound as exc:
            services.generation_job_fail(
                job_id=key, reason=f"The datagen service no longer knows this job ({exc.message})."
            )
