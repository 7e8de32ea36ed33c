"""/v1/models: the base models the vLLM targets serve now, and every fine-tuned adapter.

- A base model: what a vLLM target the serving proxy is configured with serves now (the
  relay's table, at most relay.ROUTE_TTL_S old), `owned_by` "vllm" and `created` the time of
  that listing, as vLLM's own /v1/models stamps it.
- An adapter: every Adapter row, loaded or not (a request naming one that no vLLM serves loads
  it, see SYNTHTUNE_OPENAI_AUTOLOAD), `created` its export and `owned_by` the username of
  whoever started its run ("synthtune" when no one did: recorded from a folder, or the user
  is gone).
Each id once: base models first, in target order, then adapters newest first. The serving
proxy down is a 503; a vLLM that is down just leaves its base model out.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from control_plane.openai_api import relay
from control_plane.openai_api.base import OpenAIApiView, list_body
from control_plane.openai_api.schema import ERROR, MODEL, MODEL_LIST, TAG
from control_plane.runs import selectors as run_selectors
from control_plane.runs.models import Adapter

OWNER = "synthtune"  # adapters without a user behind them
BASE_OWNER = "vllm"  # what vLLM's /v1/models says of its models


def base_model_object(model: str, *, listed_at: float) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": int(listed_at), "owned_by": BASE_OWNER}


def adapter_model_object(adapter: Adapter) -> dict[str, Any]:
    owner = adapter.run.owner if adapter.run else None
    return {
        "id": adapter.name,
        "object": "model",
        "created": int(adapter.created_at.timestamp()),
        "owned_by": owner.username if owner else OWNER,
    }


def _adapters():
    return run_selectors.adapter_list().select_related("run__owner")


class ModelCollectionApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_models_list",
        tags=[TAG],
        responses={200: MODEL_LIST, 401: ERROR, 503: ERROR},
        description="The base models the vLLM targets serve now, then every fine-tuned adapter.",
    )
    def get(self, request):
        snapshot = relay.ROUTES.current()
        data = [base_model_object(name, listed_at=snapshot.listed_at) for name in snapshot.bases]
        seen = set(snapshot.bases)
        for adapter in _adapters():
            if adapter.name not in seen:
                seen.add(adapter.name)
                data.append(adapter_model_object(adapter))
        return Response(list_body(data))


class ModelDetailApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_models_retrieve",
        tags=[TAG],
        parameters=[
            OpenApiParameter("model", str, OpenApiParameter.PATH, description="A model id; may hold '/'.")
        ],
        responses={200: MODEL, 401: ERROR, 404: ERROR, 503: ERROR},
    )
    def get(self, request, model: str):
        # An adapter first: that answer needs no serving proxy (vLLM refuses an adapter named
        # like its base model, so the two never collide).
        adapter = _adapters().filter(name=model).first()
        if adapter is not None:
            return Response(adapter_model_object(adapter))
        snapshot = relay.ROUTES.current()
        if model in snapshot.bases:
            return Response(base_model_object(model, listed_at=snapshot.listed_at))
        raise relay.model_not_found(model)
