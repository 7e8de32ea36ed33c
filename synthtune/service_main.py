"""The `python -m <service>` entry point every gRPC service shares.

`run_service` configures JSON logs, reads the settings once (a bad variable: exit 2, naming
it, never echoing its value; a listen address it cannot bind: exit 2 too), then runs the
service's `serve` coroutine. `serve_service` is what that coroutine ends with: /metrics on
SYNTHTUNE_METRICS_PORT while the server runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from prometheus_client.registry import Collector

from synthtune.grpc_server import BindError, ServerHandle, serve_until_signal
from synthtune.logs import configure_logging
from synthtune.metrics import start_metrics_server
from synthtune.settings import CommonSettings, SettingsError

S = TypeVar("S", bound=CommonSettings)


def run_service(service: str, load_settings: Callable[[], S], serve: Callable[[S], Awaitable[None]], *,
                describe: Callable[[S], dict[str, Any]] = lambda settings: {}) -> int:
    """Run `serve(settings)` to the end; the exit status. Logs as `serve`'s module; the
    "starting" line carries the listen address, the data root and `describe(settings)`."""
    logger = logging.getLogger(serve.__module__)
    configure_logging(service)
    try:
        settings = load_settings()
    except SettingsError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    configure_logging(service, settings.log_level)
    logger.info("starting", extra={"listen": settings.listen, "data_root": str(settings.data_root),
                                   **describe(settings)})
    try:
        asyncio.run(serve(settings))
    except BindError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    logger.info("stopped")
    return 0


async def serve_service(handle: ServerHandle, settings: CommonSettings, *, collectors: Iterable[Collector] = (),
                        on_stop: Callable[[], Awaitable[None]] | None = None) -> None:
    """Serve until SIGTERM/SIGINT (then `on_stop()`, then stop with the grace period), with
    the metrics server up meanwhile (when SYNTHTUNE_METRICS_PORT is set)."""
    metrics = start_metrics_server(settings.metrics_host, settings.metrics_port, collectors=collectors)
    try:
        await serve_until_signal(handle, grace_s=settings.grpc_shutdown_grace_s, on_stop=on_stop)
    finally:
        if metrics is not None:
            metrics.close()
