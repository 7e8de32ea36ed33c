"""The worker: keeps the DB in step with the services' watch streams.

Each app contributes a Follower (listed in settings.SYNTHTUNE_WORKER_FOLLOWERS).
The worker asks every follower which jobs are unfinished and runs one thread per
job that consumes its stream from the last stored seq. A stream that ends or
breaks is simply picked up again on a later poll; a service that is down is
retried with capped exponential backoff and jitter. Nothing here crashes the process.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

from django.db import close_old_connections, connection

from control_plane.core.clients import close_clients
from control_plane.core.errors import DeadlineExceeded, Unavailable
from control_plane.core.metrics import WORKER_FOLLOWS, WORKER_STREAMS

logger = logging.getLogger(__name__)


class Follower(Protocol):
    name: str

    def pending(self) -> Iterable[str]:
        """Ids of the jobs whose streams still need consuming."""

    def follow(self, key: str) -> None:
        """Store the job's events after its last stored seq until the stream ends.

        Raises synthtune.errors types when the service can't be reached."""


def backoff_s(failures: int, *, cap_s: float) -> float:
    """0.5 s, 1 s, 2 s ... up to cap_s, with jitter so many jobs don't retry in step."""
    return min(cap_s, 0.5 * 2 ** max(failures - 1, 0)) * random.uniform(0.5, 1.0)


class Worker:
    def __init__(self, followers: Sequence[Follower], *, poll_s: float, backoff_max_s: float):
        self.followers = list(followers)
        self.poll_s = poll_s
        self.backoff_max_s = backoff_max_s
        # Only the polling thread touches _threads; each follower thread only its own _failures key.
        self._threads: dict[tuple[str, str], threading.Thread] = {}
        self._failures: dict[tuple[str, str], int] = {}

    def run(self, stop: threading.Event) -> None:
        """Poll and follow until `stop` is set; then end every stream and return."""
        logger.info("worker started", extra={"followers": [f.name for f in self.followers]})
        while not stop.is_set():
            self._start_pending(stop)
            stop.wait(self.poll_s)
        self._shutdown()

    def _start_pending(self, stop: threading.Event) -> None:
        """Start a thread for each pending job that is not already being followed."""
        close_old_connections()
        self._threads = {slot: thread for slot, thread in self._threads.items() if thread.is_alive()}
        for follower in self.followers:
            try:
                keys = list(follower.pending())
            except Exception:
                logger.exception("could not list pending jobs", extra={"follower": follower.name})
                continue
            for key in keys:
                slot = (follower.name, key)
                if slot in self._threads:
                    continue
                thread = self._threads[slot] = threading.Thread(
                    target=self._follow,
                    args=(follower, key, stop),
                    name=f"{follower.name}:{key}",
                    daemon=True,
                )
                thread.start()

    def _follow(self, follower: Follower, key: str, stop: threading.Event) -> None:
        slot = (follower.name, key)
        WORKER_STREAMS.labels(follower.name).inc()
        try:
            follower.follow(key)
            self._failures.pop(slot, None)
            WORKER_FOLLOWS.labels(follower.name, "ended").inc()
        except DeadlineExceeded:
            self._failures.pop(slot, None)  # a long job outlived one stream's deadline: reconnect now
            WORKER_FOLLOWS.labels(follower.name, "deadline").inc()
        except Exception as exc:
            if stop.is_set():
                return  # our own shutdown cancelled the stream
            WORKER_FOLLOWS.labels(follower.name, "unavailable" if isinstance(exc, Unavailable) else "error").inc()
            failures = self._failures[slot] = self._failures.get(slot, 0) + 1
            delay = backoff_s(failures, cap_s=self.backoff_max_s)
            fields = {
                "follower": follower.name,
                "job_id": key,
                "failures": failures,
                "retry_in_s": round(delay, 2),
            }
            if isinstance(exc, Unavailable):
                logger.warning("service unavailable: %s", exc.message, extra=fields)
            else:
                logger.exception("following a job failed", extra=fields)
            stop.wait(delay)  # hold the slot so the next poll doesn't retry at once
        finally:
            WORKER_STREAMS.labels(follower.name).dec()
            connection.close()  # this thread's own DB connection

    def _shutdown(self) -> None:
        close_clients()  # cancels every open stream, so the threads return promptly
        for thread in self._threads.values():
            thread.join(timeout=5)
        logger.info("worker stopped")
