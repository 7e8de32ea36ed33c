"""`python -m control_plane worker`: consume the services' watch streams into the DB."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from control_plane.core.worker import Worker
from synthtune.logs import configure_logging
from synthtune.metrics import start_metrics_server


class Command(BaseCommand):
    help = (
        "Follow unfinished jobs' event streams (resuming after the last stored event) and keep "
        "datasets and jobs up to date. Runs until SIGTERM/SIGINT."
    )

    def handle(self, *args, **options):
        if not settings.SYNTHTUNE_GRPC_TOKEN:
            # The worker can do nothing without it: say so at start, not once per job forever.
            raise CommandError("SYNTHTUNE_GRPC_TOKEN is not set; give the worker the token the services use.")
        configure_logging("control_plane_worker", level=settings.LOGGING.get("level", "INFO"))
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        followers = [import_string(path)() for path in settings.SYNTHTUNE_WORKER_FOLLOWERS]
        worker = Worker(
            followers,
            poll_s=settings.SYNTHTUNE_WORKER_POLL_S,
            backoff_max_s=settings.SYNTHTUNE_WORKER_BACKOFF_MAX_S,
        )
        # Prometheus /metrics on its own port (0: off); a taken port stops the worker here, loudly.
        metrics = start_metrics_server(settings.SYNTHTUNE_METRICS_HOST, settings.SYNTHTUNE_METRICS_PORT)
        try:
            worker.run(stop)
        finally:
            if metrics is not None:
                metrics.close()
