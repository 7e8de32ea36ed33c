"""`python -m trainer_svc`: serve TrainerService until SIGTERM/SIGINT.

On start, runs a previous service left running are failed as interrupted and
queued runs carry on. On the signal: health goes NOT_SERVING, the running
child is stopped (its run fails as interrupted), then the server stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from synthtune.grpc_server import serve_until_signal
from synthtune.logs import configure_logging
from synthtune.metrics import start_metrics_server
from trainer_svc.config import SettingsError, TrainerSettings, load_settings
from trainer_svc.manager import RunManager
from trainer_svc.metrics import run_states
from trainer_svc.server import build_server

SERVICE = "trainer"
logger = logging.getLogger(__name__)


async def serve(settings: TrainerSettings) -> None:
    manager = RunManager(settings=settings)
    manager.recover()
    manager.start_scheduler()
    handle = build_server(settings, manager)
    metrics = start_metrics_server(settings.metrics_host, settings.metrics_port, collectors=[run_states(manager)])
    try:
        await serve_until_signal(handle, grace_s=settings.grpc_shutdown_grace_s, on_stop=manager.shutdown)
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
    # Before anything imports huggingface_hub, which reads it once; the run processes inherit it.
    os.environ.update(settings.hub_environment)
    logger.info("starting", extra={"listen": settings.listen, "data_root": str(settings.data_root)})
    asyncio.run(serve(settings))
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
