"""The OpenAPI contract's shared parts: the one error body as a component, and a postprocessing
hook that documents, on every operation, the statuses that come from the framework rather than
from the view (a view documents its own: 404 for a missing object, 409, 503...).

- 400: every operation that takes query or header parameters, or a body (validation);
- 401 and 403: every operation that needs a login (no or a bad token; a session without its
  CSRF token);
- 404: every operation with a path parameter (nothing by that name, or a value the URL refuses);
- 413: every operation with a body (core.limits: past the body or upload limit);
- 415: every operation with a body (a media type it does not parse);
- 429: every operation (core.throttling).

Request bodies are offered as multipart/form-data only where a file is sent.

Each error status gets its body: {"message", "code", "extra"} (Error) under /api/v1 and at the
old routes' error statuses they share; OpenAI's {"error": {...}} (OpenAIError) under /v1/.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from rest_framework import serializers

_METHODS = ("get", "put", "post", "patch", "delete")
API_ERROR = "Error"
OPENAI_ERROR = "OpenAIError"


class ErrorSerializer(serializers.Serializer):
    """The one error body of /api/v1 (core.errors.error_body)."""

    message = serializers.CharField(help_text="What went wrong, for a person; names the field at fault.")
    code = serializers.CharField(
        help_text="A google.rpc code name (INVALID_ARGUMENT, NOT_FOUND, ...) or, for HTTP-only "
        "situations, DRF's (METHOD_NOT_ALLOWED, UNSUPPORTED_MEDIA_TYPE...)."
    )
    extra = serializers.DictField(
        help_text="Details: field (the first field at fault), fields (every field's messages), "
        "errors (bad lines of an upload), service..."
    )


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": ErrorSerializer.__doc__,
    "properties": {
        "message": {"type": "string"},
        "code": {"type": "string"},
        "extra": {"type": "object", "additionalProperties": {}},
    },
    "required": ["message", "code", "extra"],
}


def _error_ref(path: str) -> str:
    return OPENAI_ERROR if path.startswith("/v1/") else API_ERROR


def _framework_statuses(operation: dict[str, Any]) -> set[int]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses = {429}
    if has_body or any(p.get("in") in ("query", "header") for p in parameters):
        statuses.add(400)
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if has_body:
        statuses |= {413, 415}
    security = operation.get("security")
    if security and {} not in security:
        statuses.add(401)
        if any("cookieAuth" in requirement for requirement in security):
            statuses.add(403)
    return statuses


def _takes_a_file(schema: dict[str, Any], schemas: dict[str, Any]) -> bool:
    if "$ref" in schema:
        schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return any(prop.get("format") == "binary" for prop in schema.get("properties", {}).values())


def _json_unless_file(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Offer multipart/form-data only where a file is sent. The parsers still take forms
    everywhere (the admin's and the tests' clients post them), but a nested JSON body (sampling,
    filters, hyperparameters) has no form encoding, so a client must not be told to use one."""
    content = operation.get("requestBody", {}).get("content", {})
    multipart = content.get("multipart/form-data")
    if multipart and "application/json" in content and not _takes_a_file(multipart["schema"], schemas):
        del content["multipart/form-data"]


def postprocess_errors(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS: the framework's statuses on every operation, each
    error status with its error body."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[API_ERROR] = _ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        ref = {"$ref": f"#/components/schemas/{_error_ref(path)}"}
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            _json_unless_file(operation, schemas)
            responses = operation.setdefault("responses", {})
            for status in _framework_statuses(operation):
                responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and not response.get("content"):
                    response["content"] = {"application/json": {"schema": ref}}
                    if not response.get("description") or response["description"].startswith("Error body"):
                        response["description"] = HTTPStatus(int(status)).phrase
    return result
