"""`python -m serving_proxy_svc`: serve ServingProxyService until SIGTERM/SIGINT.

The proxy keeps no state of its own (vLLM's /v1/models is the truth about what is
loaded), so it starts without vLLM running and a restart loses nothing. On the
signal: health goes NOT_SERVING, in-flight calls get the grace period, then the
vLLM connection pool closes.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from serving_proxy_svc.config import ProxySettings, SettingsError, load_settings
from serving_proxy_svc.proxy import ServingProxy
from serving_proxy_svc.server import build_server
from synthtune.grpc_server import serve_until_signal
from synthtune.logs import configure_logging
from synthtune.metrics import start_metrics_server

SERVICE = "serving-proxy"
logger = logging.getLogger(__name__)


async def serve(settings: ProxySettings) -> None:
    proxy = ServingProxy(settings)
    handle = build_server(settings, proxy)
    metrics = start_metrics_server(settings.metrics_host, settings.metrics_port)
    try:
        await serve_until_signal(handle, grace_s=settings.grpc_shutdown_grace_s)
    finally:
        await proxy.aclose()
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
    logger.info("starting", extra={
        "listen": settings.listen, "data_root": str(settings.data_root), "default_target": settings.vllm_url,
        "replicas": list(settings.replicas), "vllm_adapter_root": settings.vllm_adapter_root,
        "vllm_max_lora_rank": settings.vllm_max_lora_rank, "vllm_auth": "configured" if settings.vllm_token else "none",
    })
    asyncio.run(serve(settings))
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
