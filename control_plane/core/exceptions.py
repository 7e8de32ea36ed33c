"""One function turns every API error into the one body {"message", "code", "extra"}."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from control_plane.core.errors import SynthtuneError, error_body
from control_plane.core.limits import body_too_large
from synthtune.logs import request_id_var

logger = logging.getLogger(__name__)

_AUTH_HINT = "Send 'Authorization: Token <key>' or log in at /admin/."
_CODES: list[tuple[type[drf.APIException], str]] = [
    (drf.ValidationError, "INVALID_ARGUMENT"),
    (drf.ParseError, "INVALID_ARGUMENT"),
    (drf.NotAuthenticated, "UNAUTHENTICATED"),
    (drf.AuthenticationFailed, "UNAUTHENTICATED"),
    (drf.PermissionDenied, "PERMISSION_DENIED"),
    (drf.NotFound, "NOT_FOUND"),
    (drf.Throttled, "RESOURCE_EXHAUSTED"),
    # HTTP-only situations with no gRPC equivalent keep DRF's names.
    (drf.MethodNotAllowed, "METHOD_NOT_ALLOWED"),
    (drf.NotAcceptable, "NOT_ACCEPTABLE"),
    (drf.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"),
]


def _plain(detail: Any) -> Any:
    """DRF's ErrorDetail tree as plain JSON (strings, lists, dicts with string keys)."""
    if isinstance(detail, dict):
        return {str(key): _plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_plain(value) for value in detail]
    return str(detail)


def _first_message(detail: Any, path: str = "") -> tuple[str, str]:
    """(field path, message) of the first error in a validation tree."""
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        key = "" if key in ("non_field_errors", "detail") else str(key)
        return _first_message(value, f"{path}.{key}" if path and key else (path or key))
    if isinstance(detail, list) and detail:
        return _first_message(detail[0], path)
    return path, str(detail)


def _validation_body(detail: Any) -> dict[str, Any]:
    field, message = _first_message(detail)
    extra: dict[str, Any] = {}
    if isinstance(detail, dict):
        extra["fields"] = _plain(detail)
    if field:
        extra["field"] = field
        count = len(detail) if isinstance(detail, dict) else 1
        more = f" ({count - 1} more field(s) in extra.fields)" if count > 1 else ""
        message = f"{field}: {message}{more}"
    return error_body(message=message, code="INVALID_ARGUMENT", extra=extra)


def _api_body(exc: drf.APIException) -> dict[str, Any]:
    if isinstance(exc, drf.ValidationError):
        return _validation_body(exc.detail)
    code = next((code for cls, code in _CODES if isinstance(exc, cls)), str(exc.default_code).upper())
    message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else _first_message(exc.detail)[1]
    if code == "UNAUTHENTICATED":
        message = f"{message} {_AUTH_HINT}"
    return error_body(message=message, code=code)


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: typed errors, DRF errors and surprises all get the one body."""
    set_rollback()
    if isinstance(exc, RequestDataTooBig):  # Django's own check: multipart fields past the body limit
        exc = body_too_large()
    if isinstance(exc, SynthtuneError):
        return Response(
            error_body(message=exc.message, code=exc.code, extra=exc.extra), status=exc.http_status
        )
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.APIException):
        headers = {}
        if auth_header := getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = auth_header
        if isinstance(exc, drf.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))  # whole seconds, never "0"
        return Response(_api_body(exc), status=exc.status_code, headers=headers)
    # A bug, not bad input: log it, and still answer in the one body.
    logger.exception("unhandled error in API view", extra={"view": type(context.get("view")).__name__})
    return Response(
        error_body(
            message=f"Internal error (request id {request_id_var.get() or 'unknown'}).", code="INTERNAL"
        ),
        status=500,
    )
