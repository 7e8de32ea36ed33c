"""The gRPC server bootstrap every service uses.

`create_server` gives an asyncio server with:
- the official health service (per-service status) and reflection;
- one interceptor that checks the bearer token (constant time), sets the
  request id for logs, and turns SynthtuneError into a precise status with
  google.rpc.BadRequest details for field errors, and counts and times each
  call for Prometheus (synthtune.metrics; health and reflection are not counted);
- an access log: one "rpc finished" line per call on the `synthtune.access` logger,
  with request_id, rpc, grpc_type, code and duration_ms (health and reflection are
  not logged);
- optional TLS.
`serve_until_signal` runs it until SIGTERM/SIGINT: health goes NOT_SERVING,
then the server stops with a grace period so in-flight calls finish.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from synthtune.errors import SynthtuneError
from synthtune.logs import request_id_var, rpc_var
from synthtune.metrics import rpc_metrics

logger = logging.getLogger(__name__)
# One line per finished RPC, carrying request_id and rpc (from the context) with its code
# and duration: how a request's trip through the services is followed in the logs.
access_logger = logging.getLogger("synthtune.access")

REQUEST_ID_KEY = "x-request-id"
# Probes (kubelet's native gRPC probe, grpc_health_probe) and grpcurl carry no token.
_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True)
class Registration:
    """One servicer: `add(servicer, server)` is the generated add_XServicer_to_server."""

    add: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    full_name: str  # e.g. "synthtune.datagen.v1.DatagenService"


@dataclass
class ServerHandle:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]


# The status travels in trailing metadata (the message percent-encoded, the details in base64), and
# clients drop a reply whose metadata passes 8 KiB: they would see RESOURCE_EXHAUSTED ("Stream removed")
# instead of the status. Messages that quote a huge input are cut to this many UTF-8 bytes.
MAX_MESSAGE_BYTES = 1024


def _shorten(text: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 20].decode("utf-8", errors="ignore") + " … (message cut)"


def _status_for(error: SynthtuneError) -> grpc.Status:
    message = _shorten(error.message)
    status = status_pb2.Status(code=getattr(code_pb2, error.code), message=message)
    if error.field:
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=_shorten(error.field, 256), description=message)
            ]
        )
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


class _ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str):
        self._token = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(_OPEN_PREFIXES):
            # Health and reflection are open and written with context.write: pass through.
            return handler
        metadata = dict(details.invocation_metadata or ())
        authorized = hmac.compare_digest(
            str(metadata.get("authorization", "")).encode(), self._token
        )
        request_id = str(metadata.get(REQUEST_ID_KEY) or uuid.uuid4().hex)
        return _wrap_handler(handler, method, request_id, authorized)


async def _enter(context: grpc.aio.ServicerContext, method: str, request_id: str, authorized: bool):
    request_id_var.set(request_id)
    rpc_var.set(method)
    if not authorized:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "Missing or wrong bearer token: send 'authorization: Bearer <SYNTHTUNE_GRPC_TOKEN>' metadata.",
        )


async def _abort_for(context: grpc.aio.ServicerContext, exc: Exception):
    if isinstance(exc, SynthtuneError):
        status = _status_for(exc)
        await context.abort(status.code, status.details, status.trailing_metadata)
    logger.exception("unhandled error in RPC")
    await context.abort(grpc.StatusCode.INTERNAL, f"Internal error (request id {request_id_var.get()}).")


def _cancelled_code(context: grpc.aio.ServicerContext) -> str:
    """The client went away: past its deadline, or it cancelled."""
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()  # set by abort() or set_code(); None means OK
    return code.name if code is not None else "OK"


def _finished(measured, kind: str, code: str, started: float) -> None:
    seconds = perf_counter() - started
    measured.done(code, seconds)
    access_logger.info(
        "rpc finished", extra={"grpc_type": kind, "code": code, "duration_ms": round(seconds * 1000, 2)}
    )


def _wrap_handler(handler: grpc.RpcMethodHandler, method: str, request_id: str, authorized: bool):
    # Metrics: one counter increment and one histogram observe per call, at its end; the
    # label children are cached per method (synthtune.metrics), so no label lookups here.
    if handler.unary_unary:
        inner = handler.unary_unary
        measured = rpc_metrics(method, "unary")

        async def unary(request, context):
            started = perf_counter()
            code = "UNKNOWN"
            try:
                await _enter(context, method, request_id, authorized)
                try:
                    reply = await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the one place errors become statuses
                    await _abort_for(context, exc)
                code = _code_name(context)
                return reply
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except asyncio.CancelledError:
                code = _cancelled_code(context)
                raise
            finally:
                _finished(measured, "unary", code, started)

        return grpc.unary_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream:
        inner_stream = handler.unary_stream
        measured_stream = rpc_metrics(method, "server_stream")

        async def stream(request, context):
            started = perf_counter()
            code = "UNKNOWN"
            try:
                await _enter(context, method, request_id, authorized)
                try:
                    async for item in inner_stream(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except (asyncio.CancelledError, GeneratorExit):
                    raise
                except Exception as exc:  # noqa: BLE001
                    await _abort_for(context, exc)
                code = _code_name(context)
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = _cancelled_code(context)
                raise
            finally:
                _finished(measured_stream, "server_stream", code, started)

        return grpc.unary_stream_rpc_method_handler(
            stream, handler.request_deserializer, handler.response_serializer
        )
    return handler  # client-streaming RPCs: none yet


class BindError(OSError):
    """The listen address could not be bound (taken, or not this host's)."""


def create_server(
    address: str,
    registrations: Sequence[Registration],
    *,
    token: str,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> ServerHandle:
    """Build (not start) a server on `address` ("host:0" picks a free port)."""
    # gRPC sets SO_REUSEPORT by default: a second server on a taken port would start too and
    # the kernel would split connections between the two, so calls reach the wrong process.
    server = grpc.aio.server(interceptors=[_ServerInterceptor(token)], options=[("grpc.so_reuseport", 0)])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [r.full_name for r in registrations]
    for registration in registrations:
        registration.add(registration.servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    try:
        if tls_cert and tls_key:
            credentials = grpc.ssl_server_credentials([(tls_key.read_bytes(), tls_cert.read_bytes())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpcio's way of saying the bind failed
        port = 0
    if port == 0:
        raise BindError(f"could not bind the gRPC server to {address}: is another process listening there?")
    return ServerHandle(server=server, port=port, health=health_servicer, service_names=tuple(names))


async def start(handle: ServerHandle) -> None:
    await handle.server.start()
    for name in ("", *handle.service_names):
        await handle.health.set(name, health_pb2.HealthCheckResponse.SERVING)


async def serve_until_signal(handle: ServerHandle, *, grace_s: float, on_stop=None) -> None:
    """Start, then on SIGTERM/SIGINT: health NOT_SERVING, `on_stop()`, stop with grace."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await start(handle)
    logger.info("serving", extra={"port": handle.port, "services": list(handle.service_names)})
    await stop.wait()
    logger.info("shutting down", extra={"grace_s": grace_s})
    await handle.health.enter_graceful_shutdown()
    if on_stop is not None:
        await on_stop()
    await handle.server.stop(grace_s)
