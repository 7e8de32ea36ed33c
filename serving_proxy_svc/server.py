"""The serving-proxy gRPC server factory."""

from __future__ import annotations

from serving_proxy_svc.config import ProxySettings
from serving_proxy_svc.proxy import ServingProxy
from serving_proxy_svc.servicer import SERVICE_NAME, ServingProxyServicer
from synthtune.grpc_server import Registration, ServerHandle, create_server
from synthtune.serving.v1 import serving_pb2_grpc


def build_server(settings: ProxySettings, proxy: ServingProxy, address: str | None = None) -> ServerHandle:
    """Build (not start) the server on `address` (default: settings.listen; "host:0" picks a port).

    Close `proxy` (`await proxy.aclose()`) after the server stops.
    """
    registration = Registration(
        add=serving_pb2_grpc.add_ServingProxyServiceServicer_to_server,
        servicer=ServingProxyServicer(proxy),
        full_name=SERVICE_NAME,
    )
    return create_server(address or settings.listen, [registration], token=settings.grpc_token,
                         tls_cert=settings.grpc_tls_cert, tls_key=settings.grpc_tls_key)
