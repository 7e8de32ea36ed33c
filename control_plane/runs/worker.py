"""The worker's part for fine-tuning runs: follow WatchRun from the last stored seq."""

from __future__ import annotations

import logging

from control_plane.core.errors import NotFound, SynthtuneError
from control_plane.core.events import WATCH_DEADLINE_S
from control_plane.runs import selectors, services
from control_plane.runs.models import Run
from control_plane.runs.trainer import event_record, trainer_client
from synthtune.trainer.v1 import trainer_pb2 as pb

logger = logging.getLogger(__name__)


class RunFollower:
    name = "runs"

    def pending(self) -> list[str]:
        return selectors.run_pending_ids()

    def follow(self, key: str) -> None:
        """Store every event after the run's last_seq until the stream closes (after the
        terminal event) or its deadline passes; the worker reconnects after either. Once the
        run is over, copy its final metrics and resolved config from GetRun."""
        last_seq = Run.objects.filter(run_id=key).values_list("last_seq", flat=True).first()
        if last_seq is None:
            return  # deleted meanwhile
        request = pb.WatchRunRequest(run_id=key, after_seq=last_seq)
        try:
            for event in trainer_client().stream("WatchRun", request, timeout_s=WATCH_DEADLINE_S):
                services.run_event_record(run_id=key, event=event_record(event))
        except NotFound as exc:
            services.run_fail(
                run_id=key, reason=f"The trainer service no longer knows this run ({exc.message})."
            )
            return
        if Run.objects.filter(run_id=key, state__in=Run.TERMINAL_STATES).exists():
            try:
                services.run_refresh(run_id=key)
            except SynthtuneError as exc:  # the events are stored; the summary can wait for a look
                logger.warning(
                    "could not refresh a finished run", extra={"run_id": key, "reason": exc.message}
                )
