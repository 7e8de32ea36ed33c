"""Base pieces for API views: one view per operation, thin, with its own serializers."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import QueryDict
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from control_plane.core import json_types
from control_plane.core.limits import check_content_length
from control_plane.core.schema import ContractAutoSchema


class JsonErrorsMixin:
    """Errors in the one JSON body, also on views that answer something else on success
    (the schema in YAML, the docs page in HTML, a download, an event stream)."""

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


# The largest offset a page may start at: past SQLite's and PostgreSQL's 64-bit limits a
# bigger one would be a 500, and no list here comes near it.
MAX_OFFSET = 2**31 - 1


class Pagination(LimitOffsetPagination):
    """limit/offset pages; a limit or offset that is not an integer in range is a 400, not
    silently the default (DRF's own LimitOffsetPagination ignores bad values)."""

    default_limit = 50
    max_limit = 500

    def _strict(self, request, name: str, *, minimum: int, maximum: int, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if len(request.query_params.getlist(name)) > 1:
            raise serializers.ValidationError({name: ["Give this parameter once."]})
        field = serializers.IntegerField(min_value=minimum, max_value=maximum)
        try:
            return field.run_validation(raw)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({name: exc.detail}) from None

    def get_limit(self, request):
        return self._strict(
            request, self.limit_query_param, minimum=1, maximum=self.max_limit, default=self.default_limit
        )

    def get_offset(self, request):
        return self._strict(request, self.offset_query_param, minimum=0, maximum=MAX_OFFSET, default=0)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit, "default": self.default_limit},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters


class ApiView(JsonErrorsMixin, APIView):
    # Auth and permissions come from settings (token or session, IsAuthenticated).
    # Exempt from LoginRequiredMiddleware: DRF itself answers anonymous calls with
    # 401/403 in the one error body, where the middleware would redirect to a login page.
    # (A comment, not a docstring: drf-spectacular would show it on every operation.)
    pagination_class = Pagination  # used by paginated_response, and by the schema for list answers
    schema = ContractAutoSchema()  # the constraints DRF enforces, written into the schema

    @classmethod
    def as_view(cls, **initkwargs):
        return login_not_required(super().as_view(**initkwargs))

    def initial(self, request, *args, **kwargs):
        # Before authentication: a body over its limit is refused (413) without being read.
        check_content_length(request)
        super().initial(request, *args, **kwargs)

    def check_throttles(self, request):
        # DRF's, with a message that names the limit that was reached and its setting.
        refused = [throttle for throttle in self.get_throttles() if not throttle.allow_request(request, self)]
        if refused:
            waits = [wait for throttle in refused if (wait := throttle.wait()) is not None]
            limits = "; ".join(throttle.describe() for throttle in refused if hasattr(throttle, "describe"))
            raise Throttled(
                max(waits, default=None),
                detail=f"Too many requests: the limit is {limits or 'reached'}.",  # DRF adds when to retry
            )


def paginated_response(*, queryset, serializer_class: type[Serializer], request, view: APIView) -> Response:
    """A page of `queryset` in the limit/offset envelope (count, next, previous, results)."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class IgnoreClientContentNegotiation(BaseContentNegotiation):
    """For views that answer with their own media type (a download, an event stream):
    an Accept header of text/event-stream must not turn into 406 before the view runs."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class EventStreamApi(ApiView):
    # Server-Sent Events (core.sse): their own media type, and no throttle. A browser's
    # EventSource gives up for good on an answer that isn't 200 or 204, so a 429 would end a live
    # page; a stream costs one request per response (about every SYNTHTUNE_SSE_MAX_S).
    content_negotiation_class = IgnoreClientContentNegotiation
    throttle_classes = ()


class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    pass


class SwaggerView(JsonErrorsMixin, SpectacularSwaggerView):
    pass


class RedocView(JsonErrorsMixin, SpectacularRedocView):
    pass


def validated(serializer_class, data) -> dict:
    """Validate a request body with `serializer_class`; a failure is a 400 in the one error body.
    A JSON body's values must have the JSON types the schema names (json_types: 0 is not a string
    nor a boolean, "5" not a number); a form or multipart body (a QueryDict, all strings) is parsed
    as DRF parses it."""
    return _validated(serializer_class, data, json_body=not isinstance(data, QueryDict))


def _validated(serializer_class, data, *, json_body: bool = False) -> dict:
    serializer = serializer_class(data=data)  # one instance: building one deep-copies its fields
    if json_body and (errors := json_types.type_errors(serializer.fields, data)):
        raise serializers.ValidationError(errors)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


_LIST_FIELDS = (serializers.ListField, serializers.MultipleChoiceField)


def validated_query(serializer_class, query: QueryDict) -> dict:
    """Validate query parameters with `serializer_class`, as strictly as a JSON body: an empty
    value (`?status=`) is a value, refused when the field allows no blank (DRF treats form input's
    empty strings as absent); a boolean is `true` or `false`. A list field takes every repetition;
    any other field given twice is a 400.
    Parameters the serializer does not name are ignored (OpenAPI allows them)."""
    fields = serializer_class().fields
    data = {
        name: query.getlist(name) if isinstance(fields[name], _LIST_FIELDS) else query[name]
        for name in fields
        if name in query
    }
    # A boolean is `true` or `false`, as the schema says (DRF would also take 1, yes, on, t...);
    # a parameter that is not a list comes once.
    wrong = {
        name: ["Must be true or false."]
        for name, value in data.items()
        if isinstance(fields[name], serializers.BooleanField) and value not in ("true", "false")
    }
    wrong |= {
        name: ["Give this parameter once."]
        for name in data
        if not isinstance(fields[name], _LIST_FIELDS) and len(query.getlist(name)) > 1
    }
    if wrong:
        raise serializers.ValidationError(wrong)
    return _validated(serializer_class, data)
