"""`python -m datagen_svc`: serve DatagenService until SIGTERM/SIGINT.

On the signal: health goes NOT_SERVING, running jobs stop with their rows
flushed (state failed, reason "interrupted", resumable), then the server
stops with the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from datagen_svc.config import DatagenSettings, SettingsError, load_settings
from datagen_svc.manager import JobManager
from datagen_svc.metrics import job_states
from datagen_svc.server import build_server
from synthtune.grpc_server import serve_until_signal
from synthtune.logs import configure_logging
from synthtune.metrics import start_metrics_server

SERVICE = "datagen"

logger = logging.getLogger(__name__)


async def serve(settings: DatagenSettings) -> None:
    """Recover jobs, serve until a signal, then stop jobs and the server gracefully."""
    manager = JobManager(settings=settings)
    manager.recover()
    handle = build_server(settings, manager=manager)

    async def stop_jobs() -> None:
        await manager.shutdown(timeout_s=settings.grpc_shutdown_grace_s)

    metrics = start_metrics_server(settings.metrics_host, settings.metrics_port, collectors=[job_states(manager)])
    try:
        await serve_until_signal(handle, grace_s=settings.grpc_shutdown_grace_s, on_stop=stop_jobs)
    finally:
        if metrics is not None:
            metrics.close()


def main() -> int:
    configure_logging(SERVICE)
    try:
        settings = load_settings()
    except SettingsError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    configure_logging(SERVICE, settings.log_level)
    logger.info("starting", extra={"listen": settings.listen, "data_root": str(settings.data_root)})
    asyncio.run(serve(settings))
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
