"""/v1/chat/completions and /v1/completions: relayed to the vLLM that serves the named model.

The request body is OpenAI's (vLLM's superset of it) and goes to vLLM as sent; only `model`
is read here, to choose the vLLM (control_plane.openai_api.relay). The answer is vLLM's: its
JSON and status (its 4xx bodies are OpenAI's error shape already), or with "stream": true its
Server-Sent Events, passed on chunk by chunk as they are generated.

Errors of the relay itself are OpenAI's error body: 400 for a body that is not a JSON object
with a `model`, 404 `model_not_found` for a model neither vLLM nor synthtune knows, 404
`model_not_loaded` for an adapter no vLLM serves while SYNTHTUNE_OPENAI_AUTOLOAD is off, 503
when the serving proxy or the vLLM is down (or refuses SYNTHTUNE_VLLM_TOKEN), 504 when vLLM
stops answering.
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import JSONParser

from control_plane.core.api import IgnoreClientContentNegotiation
from control_plane.core.errors import InvalidArgument, Unavailable
from control_plane.core.schema import NOT_BLANK
from control_plane.openai_api import relay
from control_plane.openai_api.base import OpenAIApiView
from control_plane.openai_api.schema import ERROR, TAG

STREAM = relay.EVENT_STREAM


def parsed_body(raw: bytes) -> tuple[dict[str, Any], str]:
    """The request as a dict and its model; InvalidArgument (400) naming what is wrong."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"The request body is not JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise InvalidArgument("The request body must be a JSON object.")
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgument(
            "model is required: the id of a base model or fine-tuned adapter (GET /v1/models lists them).",
            field="model",
        )
    return data, model


def _body_for(route: relay.Route, model: str, data: dict[str, Any], raw: bytes) -> bytes:
    if route.served == model:
        return raw  # as sent: nothing re-encoded on the hot path
    return json.dumps({**data, "model": route.served}).encode()


def _relayed(request, path: str):
    raw = request.body
    data, model = parsed_body(raw)
    route = relay.resolve(model, user=request.user)
    upstream = relay.send(route=route, path=path, body=_body_for(route, model, data, raw))
    if upstream.status == 404:
        # vLLM no longer serves what the table said (restarted, unloaded elsewhere): ask once
        # more, which loads the adapter again when autoload is on.
        upstream.close()
        route = relay.resolve(model, user=request.user, fresh=True)
        upstream = relay.send(route=route, path=path, body=_body_for(route, model, data, raw))
    if upstream.status in (401, 403):
        upstream.close()
        # Not the caller's fault (their synthtune token was fine): ours to vLLM is wrong.
        raise Unavailable(
            f"vLLM refused the control plane's SYNTHTUNE_VLLM_TOKEN (HTTP {upstream.status}): give the "
            "control plane the value of vLLM's --api-key, as the serving proxy has it."
        )
    return relay.http_response(upstream)


# What parsed_body checks; the rest of OpenAI's request is vLLM's to judge (its answer comes back).
_REQUEST = {
    "type": "object",
    "required": ["model"],
    "properties": {
        "model": {
            "type": "string",
            "pattern": NOT_BLANK,
            "description": "A base model or fine-tuned adapter id (GET /v1/models).",
        },
    },
    "additionalProperties": True,
}


def _schema(*, operation_id: str, what: str):
    return extend_schema(
        operation_id=operation_id,
        tags=[TAG],
        request={"application/json": _REQUEST},
        responses={
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description=f"vLLM's {what} object."
            ),
            (200, STREAM): OpenApiResponse(
                OpenApiTypes.STR,
                description=f'With "stream": true: vLLM\'s {what} chunks as SSE, then [DONE].',
            ),
            400: ERROR,
            401: ERROR,
            404: ERROR,
            503: ERROR,
            504: ERROR,
        },
        description=(
            f"OpenAI's {what} request, relayed to the vLLM that serves `model` (a base model or a "
            "fine-tuned adapter; a known adapter no vLLM serves is loaded first when "
            "SYNTHTUNE_OPENAI_AUTOLOAD is on). vLLM's answer and status come back as it sent them."
        ),
    )


class _RelayApi(OpenAIApiView):
    # vLLM answers JSON or an event stream: an Accept header must not turn into 406 here.
    content_negotiation_class = IgnoreClientContentNegotiation
    parser_classes = [JSONParser]  # the body is read as bytes; this is what the schema shows


class ChatCompletionsApi(_RelayApi):
    @_schema(operation_id="openai_chat_completions_create", what="chat completion")
    def post(self, request):
        return _relayed(request, "/v1/chat/completions")


class CompletionsApi(_RelayApi):
    @_schema(operation_id="openai_completions_create", what="completion")
    def post(self, request):
        return _relayed(request, "/v1/completions")
