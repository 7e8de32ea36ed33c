"""`python -m datagen_svc`: serve DatagenService until SIGTERM/SIGINT.

On the signal: health goes NOT_SERVING, running jobs stop with their rows
flushed (state failed, reason "interrupted", resumable), then the server
stops with the grace period.
"""

from __future__ import annotations

import sys

from datagen_svc.config import DatagenSettings, load_settings
from datagen_svc.manager import JobManager
from datagen_svc.metrics import job_states
from datagen_svc.server import build_server
from synthtune.service_main import run_service, serve_service


async def serve(settings: DatagenSettings) -> None:
    """Recover jobs, serve until a signal, then stop jobs and the server gracefully."""
    manager = JobManager(settings=settings)
    manager.recover()
    handle = build_server(settings, manager=manager)

    async def stop_jobs() -> None:
        await manager.shutdown(timeout_s=settings.grpc_shutdown_grace_s)

    await serve_service(handle, settings, collectors=[job_states(manager)], on_stop=stop_jobs)


def main() -> int:
    return run_service("datagen", load_settings, serve)


if __name__ == "__main__":
    sys.exit(main())
