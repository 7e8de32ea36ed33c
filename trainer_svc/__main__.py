"""`python -m trainer_svc`: serve TrainerService until SIGTERM/SIGINT.

On start, runs a previous service left running are failed as interrupted and
queued runs carry on. On the signal: health goes NOT_SERVING, the running
child is stopped (its run fails as interrupted), then the server stops.
"""

from __future__ import annotations

import os
import sys

from synthtune.service_main import run_service, serve_service
from trainer_svc.config import TrainerSettings, load_settings
from trainer_svc.manager import RunManager
from trainer_svc.metrics import run_states
from trainer_svc.server import build_server


async def serve(settings: TrainerSettings) -> None:
    # Before anything imports huggingface_hub, which reads it once; the run processes inherit it.
    os.environ.update(settings.hub_environment)
    manager = RunManager(settings=settings)
    manager.recover()
    manager.start_scheduler()
    handle = build_server(settings, manager)
    await serve_service(handle, settings, collectors=[run_states(manager)], on_stop=manager.shutdown)


def main() -> int:
    return run_service("trainer", load_settings, serve)


if __name__ == "__main__":
    sys.exit(main())
