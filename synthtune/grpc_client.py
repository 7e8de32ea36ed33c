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
        self._auth = auth_metadata(token)

    def _details(self, details):
        metadata = list(details.metadata or ())
        keys = {k for k, _ in metadata}
        metadata += [item for item in call_metadata(self._auth) if item[0] not in keys]  # the caller's win
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)


def open_channel(address: str, *, token: str, tls_ca: Path | None = None) -> grpc.Channel:
    """A sync channel to `address` that authenticates every call with `token`."""
    return grpc.intercept_channel(open_plain_channel(address, tls_ca=tls_ca), _MetadataInterceptor(token))


def open_plain_channel(address: str, *, tls_ca: Path | None = None) -> grpc.Channel:
    """A sync channel to `address` that adds nothing: each call passes `metadata=call_metadata(...)`.
    For a hot path: grpc's Python interceptor machinery costs about 60 us a call."""
    if tls_ca:
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(tls_ca.read_bytes()))
    return grpc.insecure_channel(address)


def call_metadata(auth: tuple[str, str]) -> tuple[tuple[str, str], tuple[str, str]]:
    """What the interceptor adds: `auth` (from `auth_metadata`) and the request id (the current
    request's, else a fresh one)."""
    return auth, (REQUEST_ID_KEY, request_id_var.get() or uuid.uuid4().hex)


def auth_metadata(token: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {token}")
