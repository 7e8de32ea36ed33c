"""Client channels that carry the bearer token and the request id on every call."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc

from synthtune.grpc_server import REQUEST_ID_KEY
from synthtune.logs import request_id_var


class _MetadataInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
):
    def __init__(self, token: str):
        self._auth = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = list(details.metadata or ())
        keys = {k for k, _ in metadata}
        if "authorization" not in keys:
            metadata.append(self._auth)
        if REQUEST_ID_KEY not in keys:
            metadata.append((REQUEST_ID_KEY, request_id_var.get() or uuid.uuid4().hex))
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)


def open_channel(address: str, *, token: str, tls_ca: Path | None = None) -> grpc.Channel:
    """A sync channel to `address` that authenticates every call with `token`."""
    if tls_ca:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(tls_ca.read_bytes()))
    else:
        channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, _MetadataInterceptor(token))
