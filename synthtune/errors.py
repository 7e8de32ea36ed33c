"""Typed errors shared by every service, and the one gRPC -> HTTP table.

Domain code raises these; it never imports grpc. The gRPC layer turns them into
`context.abort` (see synthtune.grpc_server), the control plane turns gRPC
statuses into HTTP ones with GRPC_TO_HTTP. Codes are the names in
google/rpc/code.proto, so `grpc.StatusCode[error.code]` is the status.
"""

from __future__ import annotations

from typing import Any

# google/rpc/code.proto, "HTTP Mapping" of each code.
GRPC_TO_HTTP: dict[str, int] = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}


def http_status_for(code_name: str) -> int:
    """HTTP status for a gRPC status name; unknown names map to 500."""
    return GRPC_TO_HTTP.get(code_name, 500)


class SynthtuneError(Exception):
    """Base of every error a caller may see. `message` is shown to people."""

    code: str = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = dict(extra or {})
        if field:
            self.extra.setdefault("field", field)

    @property
    def http_status(self) -> int:
        return http_status_for(self.code)


class InvalidArgument(SynthtuneError):
    code = "INVALID_ARGUMENT"


class NotFound(SynthtuneError):
    code = "NOT_FOUND"


class AlreadyExists(SynthtuneError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(SynthtuneError):
    code = "FAILED_PRECONDITION"


class Unavailable(SynthtuneError):
    code = "UNAVAILABLE"


class ResourceExhausted(SynthtuneError):
    code = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(SynthtuneError):
    code = "DEADLINE_EXCEEDED"
