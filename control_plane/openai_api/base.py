"""What every /v1/ view shares: Bearer auth, OpenAI's error body, OpenAI's list envelope.

The views call the same services and selectors as /api/v1; only the shapes differ. Errors
still go through the control plane's one handler (so statuses, Retry-After and logging are
the same), then get OpenAI's body: {"error": {"message", "type", "param", "code"}}, which
the official SDK turns into BadRequestError, AuthenticationError, NotFoundError...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response

from control_plane.core.api import ApiView
from control_plane.core.authentication import CachedTokenAuthentication
from control_plane.core.exceptions import api_exception_handler


class BearerTokenAuthentication(CachedTokenAuthentication):
    """`Authorization: Bearer <key>`, as OpenAI clients send it; the same keys (and cache) as /api/v1."""

    keyword = "Bearer"


# HTTP status -> OpenAI's error `type`.
_TYPES = {401: "invalid_request_error", 403: "permission_error", 404: "invalid_request_error",
          429: "rate_limit_error"}


def error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return _TYPES.get(status, "invalid_request_error")


def openai_error(
    *, status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


_AUTH_HINT = (
    "Send 'Authorization: Bearer <synthtune API token>' (the SDK's api_key); "
    "create one with `python -m control_plane drf_create_token <user>`."
)


def _openai_code(status: int, code: str) -> str | None:
    if status == 401:
        return "invalid_api_key"
    if status == 429:
        return "rate_limit_exceeded"  # OpenAI's own code; the SDK raises RateLimitError for the 429
    return code.lower() if code else None


def _message(status: int, message: str) -> str:
    if status == 401:  # the core hint names /api/v1's "Token" keyword
        return f"{message.split(' Send ', 1)[0]} {_AUTH_HINT}"
    return message


def openai_exception_handler(exc: Exception, context: dict) -> Response:
    """The control plane's handler (status, headers, logging), then OpenAI's body. A field a
    service names is mapped to the request's own name through the view's `param_names`."""
    response = api_exception_handler(exc, context)
    body = response.data
    extra = body.get("extra") or {}
    field = extra.get("field") or None
    names: Mapping[str, str] = getattr(context.get("view"), "param_names", {})
    response.data = openai_error(
        status=response.status_code,
        message=_message(response.status_code, body["message"]),
        param=names.get(field, field) if field else None,
        # A view may name OpenAI's own code (model_not_found) in extra["openai_code"].
        code=extra.get("openai_code") or _openai_code(response.status_code, body["code"]),
    )
    return response


class OpenAIApiView(ApiView):
    # Bearer first (what the SDK sends); Token and session as on /api/v1.
    authentication_classes = [BearerTokenAuthentication, CachedTokenAuthentication, SessionAuthentication]
    # A service's field name -> this operation's request field (e.g. datasets -> training_file).
    param_names: Mapping[str, str] = {}

    def get_exception_handler(self):
        return openai_exception_handler


def list_body(data: list[dict[str, Any]], *, has_more: bool | None = None, ids: bool = False) -> dict[str, Any]:
    """OpenAI's list envelope; `ids` adds first_id/last_id (files, checkpoints)."""
    body: dict[str, Any] = {"object": "list", "data": data}
    if ids:
        body["first_id"] = data[0]["id"] if data else None
        body["last_id"] = data[-1]["id"] if data else None
    if has_more is not None:
        body["has_more"] = has_more
    return body


def cursor_page(queryset: QuerySet, *, after: Any, limit: int, ascending: bool = False) -> tuple[list, bool]:
    """One page of `queryset` in (created_at, id) order after the `after` row: (rows, has_more)."""
    ordered = queryset.order_by(*(("created_at", "id") if ascending else ("-created_at", "-id")))
    if after is not None:
        op = "gt" if ascending else "lt"
        ordered = ordered.filter(
            Q(**{f"created_at__{op}": after.created_at}) | Q(created_at=after.created_at, **{f"id__{op}": after.id})
        )
    rows = list(ordered[: limit + 1])
    return rows[:limit], len(rows) > limit
