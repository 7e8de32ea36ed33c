"""The OpenAPI contract's shared parts: the one error body as a component, and a postprocessing
hook that documents, on every operation, the statuses that come from the framework rather than
from the view (a view documents its own: 404 for a missing object, 409, 503...).

- 400: every operation that takes query or header parameters, or a body (validation);
- 401 and 403: every operation that needs a login (no or a bad token; a session without its
  CSRF token);
- 404: every operation with a path parameter (nothing by that name, or a value the URL refuses);
- 414: every operation with path or query parameters (gunicorn's request line limit, its HTML);
- 413: every operation with a body (core.limits: past the body or upload limit);
- 415: every operation with a body (a media type it does not parse);
- 429: every operation (core.throttling).

Request bodies are offered as multipart/form-data only where a file is sent.

Constraints the serializers enforce but drf-spectacular does not write down are added to every
request-side string (parameters and the *Request components): no NUL character (DRF refuses one
in any CharField), and, where a blank is refused, at least one character that is not whitespace
(DRF trims first). Tokens that travel as an Authorization header are visible ASCII
(synthtune.errors, the services refuse anything else). FIELD_PATCHES adds what a view's own
validation checks (a range's open end, a URL's form).

Each error status gets its body: {"message", "code", "extra"} (Error) under /api/v1; OpenAI's
{"error": {...}} (OpenAIError) under /v1/; the old app's {"status": "error", "message"}
(LegacyError) at the old routes.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

_METHODS = ("get", "put", "post", "patch", "delete")
API_ERROR = "Error"
OPENAI_ERROR = "OpenAIError"
LEGACY_ERROR = "LegacyError"  # the old routes' {"status": "error", "message"} (control_plane.legacy.schema)


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


_LEGACY_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'The old app\'s failure body: {"status": "error", "message"}.',
    "properties": {"status": {"type": "string", "enum": ["error"]}, "message": {"type": "string"}},
    "required": ["status", "message"],
}


# No NUL; and for a field that refuses a blank, one character that is neither whitespace nor NUL.
# The patterns of fields that take a blank never match "": drf-spectacular writes those fields as
# oneOf [the pattern, maxLength 0], and "" must match exactly one side.
ANY_TEXT = "^[^\\x00]+$"
NOT_BLANK = "^[^\\x00]*[^\\s\\x00][^\\x00]*$"
# A bearer token (vLLM's, an endpoint's, a judge's): visible ASCII, surrounding whitespace trimmed.
TOKEN = "^\\s*[!-~]+\\s*$|^\\s+$"
TOKEN_FIELDS = frozenset({"token", "judge_token", "X-Vllm-Token"})
# The same as a header parameter, which has no oneOf wrapper: empty is fine.
HEADER_TOKEN = "^\\s*[!-~]*\\s*$"
_PORT = "(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
# A vLLM base URL as deployments.apis.TargetField reads it (http(s), a host, a port up to 65535, no
# query or fragment); a judge's URL on a batch comparison follows the same rule.
VLLM_URL = f"^\\s*https?://[^\\s/?#@:\\[\\]]+{_PORT}(/[^\\s?#]*)?\\s*$"
# An OpenAI-compatible endpoint of datagen (a teacher, a judge): http(s), a host, a port up to 65535.
HTTP_URL = f"^\\s*https?://[^\\s/?#@:\\[\\]]+{_PORT}([/?#][^\\s]*)?\\s*$"

# An artifact name as synthtune.paths.validate_name takes it: a letter or digit first, then letters,
# digits, '.', '-', '_', never two dots running (with maxLength 128).
_NAME = "[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?"
NAME = f"^\\s*{_NAME}\\s*$"  # DRF trims the whitespace around it first
NAME_SCHEMA = {"pattern": NAME, "maxLength": 128}
EXACT_NAME_SCHEMA = {"pattern": f"^{_NAME}$", "maxLength": 128}  # a field that does not trim
# A base model id: "name" or "org/name" (runs.params._MODEL_ID_RE, never "..").
MODEL_ID = f"^\\s*{_NAME}(/{_NAME})?\\s*$"
# A dataset as an input: "name" or "name@N" (datasets.versions.dataset_version_get).
DATASET_REF_SCHEMA = {"pattern": f"^\\s*{_NAME}(@0*[1-9][0-9]*)?\\s*$", "maxLength": 256}

# component -> property -> keywords to merge in (nested dicts merge: {"items": {...}}). The apis
# modules add their own.
FIELD_PATCHES: dict[str, dict[str, dict[str, Any]]] = {
    # core.validators.top_p_above_zero: (0, 1].
    "SamplingRequest": {"top_p": {"exclusiveMinimum": True}},
}
# component -> property -> the property's whole schema, where a view's own check makes a field
# that the serializer leaves optional and blank-taking required and not blank (the old routes').
FIELD_REPLACEMENTS: dict[str, dict[str, dict[str, Any]]] = {}


def _string_pattern(field: serializers.Field) -> str | None:
    """The pattern of a request string the schema would otherwise leave open."""
    if own := getattr(field, "schema_pattern", None):  # a field that knows its form (TargetField)
        return own
    if field.field_name in TOKEN_FIELDS:
        return TOKEN
    if isinstance(field, serializers.CharField):
        return NOT_BLANK if not field.allow_blank and field.trim_whitespace else ANY_TEXT
    return None


class ContractAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the string constraints DRF enforces (module docstring)."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and schema.get("type") == "string"
            and not ({"enum", "format", "pattern"} & schema.keys())
            and (pattern := _string_pattern(field))
        ):
            schema["pattern"] = pattern
        return schema


def _merge(schema: dict[str, Any], keywords: dict[str, Any]) -> None:
    for key, value in keywords.items():
        if isinstance(value, dict) and isinstance(schema.get(key), dict):
            _merge(schema[key], value)
        else:
            schema[key] = value


def _request_constraints(result: dict[str, Any]) -> None:
    schemas = result["components"]["schemas"]
    for component, replacements in FIELD_REPLACEMENTS.items():
        if component in schemas:
            schemas[component].setdefault("properties", {}).update(replacements)
    for component, patches in FIELD_PATCHES.items():
        for prop, keywords in patches.items():
            if prop == "" and component in schemas:  # the component itself
                _merge(schemas[component], keywords)
            elif prop in schemas.get(component, {}).get("properties", {}):
                target = schemas[component]["properties"][prop]
                # A field that takes a blank is oneOf [its schema, maxLength 0]: patch its schema.
                _merge(target["oneOf"][0] if "oneOf" in target else target, keywords)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method in _METHODS:
                for parameter in operation.get("parameters", []):
                    schema = parameter.get("schema", {})
                    if parameter["name"] in TOKEN_FIELDS and schema.get("type") == "string":
                        schema.setdefault("pattern", HEADER_TOKEN)
                    if parameter["in"] == "path" and (named := _path_names(path, parameter["name"])):
                        schema.update(named)
                    if parameter["name"] in _QUERY_RULES and parameter["in"] in ("query", "header"):
                        schema.update(_QUERY_RULES[parameter["name"]])


# Parameters whose view checks more than their serializer says: core.sse.resume_point (a seq is
# >= 0), the dataset diff's `against` (a dataset or name@N).
_QUERY_RULES: dict[str, dict[str, Any]] = {
    "after_seq": {"minimum": 0},
    "Last-Event-ID": {"minimum": 0},
    "against": DATASET_REF_SCHEMA,
}


def _path_names(path: str, parameter: str) -> dict[str, Any] | None:
    """An adapter's name in a path is a plain name; a dataset's may be "name@N"."""
    if parameter != "name":
        return None
    if path.startswith("/api/v1/adapters/"):
        return {"pattern": f"^{_NAME}$", "maxLength": 128}
    if path.startswith("/api/v1/datasets/"):
        return {"pattern": f"^{_NAME}(@0*[1-9][0-9]*)?$", "maxLength": 256}
    return None


# One server-sent event as schemathesis (and EventSource) reads it: `data:` lines joined, the
# `event:` type (default "message"), the `id:` (a number here) and `retry:`.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data", "event"],
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


# gunicorn's own answer to a request line past limit_request_line (4094 bytes), before Django.
URI_TOO_LONG = {
    "description": "URI Too Long: the request line is over gunicorn's 4094 bytes (gunicorn's HTML page).",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


def _error_ref(path: str) -> str:
    if path.startswith("/v1/"):
        return OPENAI_ERROR
    return API_ERROR if path.startswith("/api/") else LEGACY_ERROR


def _framework_statuses(operation: dict[str, Any]) -> set[int]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses = {429}
    if has_body or any(p.get("in") in ("query", "header") for p in parameters):
        statuses.add(400)
    if any(p.get("in") in ("query", "path") for p in parameters):
        statuses.add(414)
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
    if not multipart or "application/json" not in content:
        return
    if not _takes_a_file(multipart["schema"], schemas):
        del content["multipart/form-data"]
    elif "$ref" in multipart["schema"]:
        _split_jsonl_body(content, schemas)


def _jsonl_file_part(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A body's `file` is a dataset file: its part's media type says it is JSON Lines."""
    multipart = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
    if not multipart:
        return
    schema = multipart["schema"]
    if "$ref" in schema:
        schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
    if schema.get("properties", {}).get("file", {}).get("format") == "binary":
        multipart["encoding"] = {"file": {"contentType": JSONL_MEDIA_TYPE}}


def _body_required(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A body with required fields cannot be left out (drf-spectacular marks only serializers')."""
    body = operation.get("requestBody")
    if body and not body.get("required"):
        for media in body.get("content", {}).values():
            schema = media.get("schema", {})
            if "$ref" in schema:
                schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
            if schema.get("required"):
                body["required"] = True


# A dataset file's part in a multipart body: UTF-8 JSON Lines, each line a row (synthtune.records).
JSONL_MEDIA_TYPE = "application/jsonl"
_ROW_TEXT = {"type": "string", "pattern": "\\S"}  # records.row_format: not blank once stripped
# One row of a dataset body's `rows` (synthtune.records.row_format). OpenAPI 3.0 cannot say the
# chat format's last two rules (the last message an assistant's, not blank; a user message in
# it): they are in the description, and the server answers 400 naming the row otherwise.
ROW_SCHEMA: dict[str, Any] = {
    "description": 'A row: {"instruction", "output", "input"?, "system"?} or {"messages": [...]}, the '
    "last message a non-blank assistant answer and at least one user message.",
    "oneOf": [
        {
            "type": "object",
            "required": ["instruction", "output"],
            "properties": {
                "instruction": _ROW_TEXT,
                "output": _ROW_TEXT,
                "input": {"type": "string"},
                "system": {"type": "string"},
                "messages": {"not": {}},
            },
        },
        {
            "type": "object",
            "required": ["messages"],
            "properties": {
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"type": "string", "enum": ["system", "user", "assistant"]},
                            "content": {"type": "string"},
                        },
                    },
                }
            },
        },
    ],
}

# The three ways to send a dataset body (datasets.apis.JsonlBodySerializer): exactly one.
_JSONL_WAYS = ("file", "content", "rows")
# Bodies whose `name` defaults to the uploaded file's name, so JSON must give one.
_NAME_WITHOUT_FILE = frozenset({"DatasetUploadInputRequest"})


def _split_jsonl_body(content: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A body that takes a file, or the same rows as JSON text or a list: in JSON, exactly one of
    content and rows (a file cannot travel in JSON); in multipart, the file (a form has no list)."""
    name = content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    base = schemas[name]
    if not set(_JSONL_WAYS) <= base.get("properties", {}).keys():
        return
    properties = base["properties"]
    required = [field for field in base.get("required", []) if field not in _JSONL_WAYS]
    as_json = {**base, "properties": {k: v for k, v in properties.items() if k != "file"}}
    as_json["properties"]["rows"] = {**properties["rows"], "minItems": 1, "items": ROW_SCHEMA}
    as_json["oneOf"] = [{"required": ["content"]}, {"required": ["rows"]}]
    as_form = {**base, "properties": {k: v for k, v in properties.items() if k not in ("content", "rows")}}
    as_form["required"] = ["file", *required]
    if name in _NAME_WITHOUT_FILE:
        required = [*required, "name"]  # a file's name is the default name; JSON has none
    if required:
        as_json["required"] = required
    else:
        as_json.pop("required", None)
    schemas[f"{name}Json"], schemas[f"{name}Form"] = as_json, as_form
    content["application/json"]["schema"] = {"$ref": f"#/components/schemas/{name}Json"}
    content["multipart/form-data"]["schema"] = {"$ref": f"#/components/schemas/{name}Form"}


def postprocess_errors(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS: the framework's statuses on every operation, each
    error status with its error body."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[API_ERROR] = _ERROR_SCHEMA
    schemas[LEGACY_ERROR] = _LEGACY_ERROR_SCHEMA
    _request_constraints(result)
    for path, operations in result.get("paths", {}).items():
        ref = {"$ref": f"#/components/schemas/{_error_ref(path)}"}
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            _json_unless_file(operation, schemas)
            _jsonl_file_part(operation, schemas)
            _body_required(operation, schemas)
            responses = operation.setdefault("responses", {})
            for status in _framework_statuses(operation):
                responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
            if "414" in responses:
                responses["414"] = URI_TOO_LONG
            for response in responses.values():
                stream = response.get("content", {}).get("text/event-stream")
                if stream is not None and stream.get("schema") == {"type": "string"}:
                    stream["schema"] = SSE_EVENT_SCHEMA
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and not response.get("content"):
                    response["content"] = {"application/json": {"schema": ref}}
                    if not response.get("description") or response["description"].startswith("Error body"):
                        response["description"] = HTTPStatus(int(status)).phrase
    return result
