"""`python -m serving_proxy_svc`: serve ServingProxyService until SIGTERM/SIGINT.

The proxy keeps no state of its own (vLLM's /v1/models is the truth about what is
loaded), so it starts without vLLM running and a restart loses nothing. On the
signal: health goes NOT_SERVING, in-flight calls get the grace period, then the
vLLM connection pool closes.
"""

from __future__ import annotations

import sys

from serving_proxy_svc.config import ProxySettings, load_settings
from serving_proxy_svc.proxy import ServingProxy
from serving_proxy_svc.server import build_server
from synthtune.service_main import run_service, serve_service


async def serve(settings: ProxySettings) -> None:
    proxy = ServingProxy(settings)
    try:
        await serve_service(build_server(settings, proxy), settings)
    finally:
        await proxy.aclose()


def describe(settings: ProxySettings) -> dict:
    return {"default_target": settings.vllm_url, "replicas": list(settings.replicas),
            "vllm_adapter_root": settings.vllm_adapter_root, "vllm_max_lora_rank": settings.vllm_max_lora_rank,
            "vllm_auth": "configured" if settings.vllm_token else "none"}


def main() -> int:
    return run_service("serving-proxy", load_settings, serve, describe=describe)


if __name__ == "__main__":
    sys.exit(main())
