"""Request ids: taken from X-Request-ID (or made), put in every log line and gRPC call, returned."""

from __future__ import annotations

import re
import uuid

from synthtune.logs import request_id_var

HEADER = "X-Request-ID"
# Anything else (newlines, huge values) is replaced, so a client can't forge log lines.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(HEADER, "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        # synthtune.grpc_client reads this var, so the id travels on to the services.
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[HEADER] = request_id
        return response
