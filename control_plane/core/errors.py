"""Typed errors of the control plane and the one error body.

Services and selectors raise synthtune.errors types (each carries its gRPC code,
hence its HTTP status through synthtune.errors.GRPC_TO_HTTP). Errors that come
back from a gRPC service are turned into the same types here, so views never
see grpc.RpcError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from synthtune.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SynthtuneError,
    Unavailable,
)

__all__ = [
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PayloadTooLarge",
    "SynthtuneError",
    "Unavailable",
    "UpstreamError",
    "error_body",
    "typed_error",
    "from_rpc_error",
]

_TYPED: dict[str, type[SynthtuneError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        ResourceExhausted,
        DeadlineExceeded,
    )
}


class PayloadTooLarge(SynthtuneError):
    """A request body (or an uploaded file) over a configured limit: HTTP 413.

    HTTP-only, like METHOD_NOT_ALLOWED: no service raises it (a gRPC message over its limit is
    RESOURCE_EXHAUSTED there), so its code is not a google.rpc name."""

    code = "PAYLOAD_TOO_LARGE"

    @property
    def http_status(self) -> int:
        return 413


class UpstreamError(SynthtuneError):
    """A service answered with a status that has no typed error of its own (INTERNAL, ABORTED...)."""

    def __init__(self, code: str, message: str, *, extra: dict[str, Any] | None = None):
        super().__init__(message, extra=extra)
        self.code = code


def typed_error(code: str, message: str, *, extra: dict[str, Any] | None = None) -> SynthtuneError:
    """The typed error for a google.rpc code name (UpstreamError when it has no type of its own)."""
    cls = _TYPED.get(code)
    return cls(message, extra=extra) if cls else UpstreamError(code or "UNKNOWN", message, extra=extra)


def error_body(*, message: str, code: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error body of the API."""
    return {"message": message, "code": code, "extra": extra or {}}


def _field_violations(exc: grpc.RpcError) -> list[tuple[str, str]]:
    try:
        status = rpc_status.from_call(exc)
    except ValueError:  # trailers disagree with the status; keep the plain message
        return []
    violations = []
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations += [(v.field, v.description) for v in bad_request.field_violations]
    return violations


def _raised_by_service(exc: grpc.RpcError) -> bool:
    """True when the service's own logic raised this (the shared interceptor attaches a
    google.rpc status); false for transport failures and the gRPC token check, which don't."""
    if not isinstance(exc, grpc.Call):
        return False
    return any(key == "grpc-status-details-bin" for key, _ in exc.trailing_metadata() or ())


def from_rpc_error(
    exc: grpc.RpcError,
    *,
    service: str,
    address: str,
    timeout_s: float,
    field_names: Mapping[str, str] | None = None,
) -> SynthtuneError:
    """A typed error for a failed call; `field_names` maps proto field paths to API field names."""
    code = exc.code().name if exc.code() else "UNKNOWN"
    details = exc.details() or code
    where = {"service": service, "address": address}
    if _raised_by_service(exc) and code in ("UNAVAILABLE", "UNAUTHENTICATED", "PERMISSION_DENIED"):
        # The service itself judged something it calls: keep its message (it names the URL).
        if code == "UNAVAILABLE":
            return Unavailable(details, extra={"service": service, "upstream": True})
        # A credential the caller passed for that upstream (a vLLM or endpoint token) was refused.
        return InvalidArgument(details, extra={"field": "token", "upstream_code": code})
    if code == "UNAVAILABLE":
        return Unavailable(
            f"The {service} service at {address} is unavailable ({details}). "
            "Check that it is running and that the control plane's address for it is right.",
            extra=where,
        )
    if code == "DEADLINE_EXCEEDED":
        return DeadlineExceeded(
            f"The {service} service at {address} did not answer within {timeout_s:g}s.", extra=where
        )
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        # Not the API caller's fault: the control plane's own service token is wrong.
        return Unavailable(
            f"The {service} service at {address} rejected the control plane's SYNTHTUNE_GRPC_TOKEN; "
            "give both the same token.",
            extra={**where, "upstream_code": code},
        )
    extra: dict[str, Any] = {"service": service}
    violations = _field_violations(exc)
    if violations:
        names = field_names or {}
        extra["field"] = names.get(violations[0][0], violations[0][0])
        extra["fields"] = {}
        for proto_field, description in violations:
            extra["fields"].setdefault(names.get(proto_field, proto_field), []).append(description)
    if code in _TYPED:
        return typed_error(code, details, extra=extra)
    return UpstreamError(code, f"The {service} service failed: {details}", extra=extra)
