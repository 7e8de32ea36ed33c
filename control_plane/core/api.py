"""Base pieces for API views: one view per operation, thin, with its own serializers."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.exceptions import Throttled
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from control_plane.core.limits import check_content_length


class JsonErrorsMixin:
    """Errors in the one JSON body, also on views that answer something else on success
    (the schema in YAML, the docs page in HTML, a download, an event stream)."""

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class ApiView(JsonErrorsMixin, APIView):
    # Auth and permissions come from settings (token or session, IsAuthenticated).
    # Exempt from LoginRequiredMiddleware: DRF itself answers anonymous calls with
    # 401/403 in the one error body, where the middleware would redirect to a login page.
    # (A comment, not a docstring: drf-spectacular would show it on every operation.)
    pagination_class = Pagination  # used by paginated_response, and by the schema for list answers

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
    """Validate `data` with `serializer_class`; a failure is a 400 in the one error body."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
