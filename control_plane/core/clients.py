"""gRPC clients for the services: cached channels, a deadline on every call, typed errors.

A client is built from settings (address, SYNTHTUNE_GRPC_TOKEN, TLS CA) and sends
the bearer token and the request id with every call (synthtune.grpc_client.call_metadata:
passed per call, as an interceptor would add them, without its ~60 us a call).
Callers never see grpc.RpcError: failures come back as synthtune.errors types, mapped
in control_plane.core.errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from time import perf_counter
from typing import Any

import grpc
from django.conf import settings

from control_plane.core.errors import SynthtuneError, Unavailable, from_rpc_error
from control_plane.core.metrics import grpc_call_done
from synthtune.grpc_client import auth_metadata, call_metadata, open_plain_channel


class ServiceClient:
    """One service's stub. `call` for unary RPCs, `stream` for server streams."""

    def __init__(
        self,
        *,
        service: str,
        address: str,
        token: str,
        stub_factory: Callable[[grpc.Channel], Any],
        timeout_s: float,
        tls_ca=None,
        field_names: Mapping[str, str] | None = None,
    ):
        self.service = service
        self.address = address
        self.timeout_s = timeout_s
        self._field_names = dict(field_names or {})
        self._auth = auth_metadata(token)
        self._channel = open_plain_channel(address, tls_ca=tls_ca)
        self._stub = stub_factory(self._channel)

    def _error(self, exc: grpc.RpcError, timeout_s: float) -> SynthtuneError:
        error = from_rpc_error(
            exc,
            service=self.service,
            address=self.address,
            timeout_s=timeout_s,
            field_names=self._field_names,
        )
        if isinstance(error, Unavailable):
            # A failed channel waits out its reconnect backoff (up to minutes) before trying
            # again; forget it so the next call dials afresh once the service is back.
            _forget(self)
        return error

    def call(self, method: str, request: Any, *, timeout_s: float | None = None) -> Any:
        timeout = timeout_s or self.timeout_s
        started, code = perf_counter(), "OK"
        try:
            return getattr(self._stub, method)(request, timeout=timeout, metadata=call_metadata(self._auth))
        except grpc.RpcError as exc:
            code = _code_name(exc)
            raise self._error(exc, timeout) from None
        finally:
            grpc_call_done(self.service, method, "unary", code, perf_counter() - started)

    def stream(self, method: str, request: Any, *, timeout_s: float) -> Iterator[Any]:
        """Items of a server stream. The deadline bounds the whole stream; callers reconnect."""
        started, code = perf_counter(), "OK"
        call = getattr(self._stub, method)(request, timeout=timeout_s, metadata=call_metadata(self._auth))
        try:
            yield from call
        except grpc.RpcError as exc:
            code = _code_name(exc)
            raise self._error(exc, timeout_s) from None
        except GeneratorExit:
            code = "CANCELLED"
            raise
        finally:
            call.cancel()  # the consumer stopped early: end the stream on the server too
            grpc_call_done(self.service, method, "server_stream", code, perf_counter() - started)

    def close(self) -> None:
        """Close the channel; calls in flight end with CANCELLED."""
        self._channel.close()


def _code_name(exc: grpc.RpcError) -> str:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    return code.name if code is not None else "UNKNOWN"


_clients: dict[tuple, ServiceClient] = {}
_lock = threading.Lock()


def _forget(client: ServiceClient) -> None:
    with _lock:
        for key, cached in list(_clients.items()):
            if cached is client:
                del _clients[key]


def service_client(
    *,
    service: str,
    address: str,
    stub_factory: Callable[[grpc.Channel], Any],
    field_names: Mapping[str, str] | None = None,
) -> ServiceClient:
    """The cached client for `service` at `address`, built from the current settings."""
    token = settings.SYNTHTUNE_GRPC_TOKEN
    if not token:
        raise Unavailable(
            f"The control plane has no SYNTHTUNE_GRPC_TOKEN, so it cannot call the {service} service "
            f"at {address}; set it to the token the services use.",
            extra={"service": service, "address": address},
        )
    key = (service, address, token, settings.SYNTHTUNE_GRPC_TLS_CA, settings.SYNTHTUNE_GRPC_TIMEOUT_S)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = ServiceClient(
                service=service,
                address=address,
                token=token,
                stub_factory=stub_factory,
                timeout_s=settings.SYNTHTUNE_GRPC_TIMEOUT_S,
                tls_ca=settings.SYNTHTUNE_GRPC_TLS_CA,
                field_names=field_names,
            )
        return client


def close_clients() -> None:
    """Close every cached channel (the worker does this to stop its streams)."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
