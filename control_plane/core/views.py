"""Django-level error pages: JSON in the one body under /api/, Django's pages elsewhere."""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults

from control_plane.core.errors import error_body
from synthtune.logs import request_id_var


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if _is_api(request):
        body = error_body(message=f"No API route {request.path}; see /api/docs/.", code="NOT_FOUND")
        return JsonResponse(body, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        message = f"Internal error (request id {request_id_var.get() or 'unknown'})."
        return JsonResponse(error_body(message=message, code="INTERNAL"), status=500)
    return defaults.server_error(request)
