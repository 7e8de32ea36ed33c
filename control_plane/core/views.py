"""Django-level error pages: JSON in the one body under /api/, OpenAI's error body under /v1/,
Django's pages elsewhere."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.views import defaults

from control_plane.core.errors import error_body
from synthtune.logs import request_id_var


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _is_openai(request) -> bool:
    return request.path.startswith("/v1/")


def not_found(request, exception=None):
    if _is_openai(request):
        from control_plane.openai_api.base import openai_error

        message = f"Unknown request URL: {request.method} {request.path}. See /api/docs/ for the /v1/ routes."
        return JsonResponse(openai_error(status=404, message=message, code="unknown_url"), status=404)
    if _is_api(request):
        body = error_body(message=f"No API route {request.path}; see /api/docs/.", code="NOT_FOUND")
        return JsonResponse(body, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    message = f"Internal error (request id {request_id_var.get() or 'unknown'})."
    if _is_openai(request):
        from control_plane.openai_api.base import openai_error

        return JsonResponse(openai_error(status=500, message=message, code="internal"), status=500)
    if _is_api(request):
        return JsonResponse(error_body(message=message, code="INTERNAL"), status=500)
    return defaults.server_error(request)


@login_not_required
def healthz(request):
    """Liveness for probes and the old app's clients: 200 when the DB answers, else 503.

    The body is the old app's plain text "ok"; a client that asks for JSON (Accept:
    application/json) gets {"status": "ok"}."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        if wants_json:
            return JsonResponse({"status": "error", "message": "database unreachable"}, status=503)
        return HttpResponse("database unreachable", status=503, content_type="text/plain; charset=utf-8")
    if wants_json:
        return JsonResponse({"status": "ok"})
    return HttpResponse("ok", content_type="text/plain; charset=utf-8")
