"""Request body limits: 413 (PayloadTooLarge) for a body over its limit, before it is read.

Two settings:
- SYNTHTUNE_UPLOAD_MAX_BYTES: an uploaded file (multipart/form-data);
- SYNTHTUNE_BODY_MAX_BYTES (Django's DATA_UPLOAD_MAX_MEMORY_SIZE): any other body (JSON, form fields).

`check_content_length` runs first in every API view (core.api.ApiView.initial), before
authentication, from the Content-Length header alone. A multipart body may hold a file up to the
upload limit plus fields up to the body limit; a file past the upload limit in a body that is
under that sum is stopped as it streams in (`UploadLimitHandler`), and Django's multipart parser
then closes (deletes) what it had spooled, so nothing half-written stays.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from control_plane.core.errors import PayloadTooLarge

UPLOAD_SETTING = "SYNTHTUNE_UPLOAD_MAX_BYTES"
BODY_SETTING = "SYNTHTUNE_BODY_MAX_BYTES"
MULTIPART = "multipart/form-data"


def upload_limit() -> int:
    return int(settings.SYNTHTUNE_UPLOAD_MAX_BYTES)


def body_limit() -> int | None:
    """None: no limit (Django's DATA_UPLOAD_MAX_MEMORY_SIZE = None)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return None if limit is None else int(limit)


def _too_large(message: str, *, limit: int, setting: str, size: int | None = None, field: str | None = None):
    extra = {"limit_bytes": limit, "setting": setting}
    if size is not None:
        extra["size_bytes"] = size
    return PayloadTooLarge(message, field=field, extra=extra)


def body_too_large(size: int | None = None) -> PayloadTooLarge:
    """A body that is not a file (or a multipart body's fields) over SYNTHTUNE_BODY_MAX_BYTES."""
    limit = body_limit() or 0
    what = f"The request body is {size} bytes" if size is not None else "The request body (its form fields) is too large"
    return _too_large(
        f"{what}; the limit for a body that is not an uploaded file is {limit} bytes ({BODY_SETTING}). "
        f"Send a dataset as a multipart/form-data file instead (up to {upload_limit()} bytes, {UPLOAD_SETTING}), "
        f"or have the operator raise {BODY_SETTING}.",
        limit=limit,
        setting=BODY_SETTING,
        size=size,
    )


def file_too_large(*, field: str, size: int | None = None) -> PayloadTooLarge:
    """An uploaded file over SYNTHTUNE_UPLOAD_MAX_BYTES (size None: stopped while streaming in)."""
    limit = upload_limit()
    what = f"{field} is {size} bytes" if size is not None else f"{field} is more than {limit} bytes"
    return _too_large(
        f"{what}; the upload limit is {limit} bytes ({UPLOAD_SETTING}). Send a smaller file (split the "
        f"dataset, then merge the parts with POST /api/v1/dataset-merges/), or have the operator raise "
        f"{UPLOAD_SETTING}.",
        limit=limit,
        setting=UPLOAD_SETTING,
        size=size,
        field=field,
    )


def content_length(request) -> int:
    """The request's Content-Length; 0 when absent or not a number (DRF then reads no body)."""
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def check_content_length(request) -> None:
    """Raise PayloadTooLarge when the Content-Length alone is over the limit for its media type."""
    size = content_length(request)
    body = body_limit()
    if body is None or size <= body:
        return
    if request.META.get("CONTENT_TYPE", "").lower().startswith(MULTIPART):
        ceiling = upload_limit() + body
        if size > ceiling:
            raise _too_large(
                f"The request body is {size} bytes; a multipart/form-data upload may be at most {ceiling} bytes: "
                f"a file up to {upload_limit()} bytes ({UPLOAD_SETTING}) and form fields up to {body} bytes "
                f"({BODY_SETTING}). Send a smaller file, or have the operator raise {UPLOAD_SETTING}.",
                limit=upload_limit(),
                setting=UPLOAD_SETTING,
                size=size,
            )
        return  # each file is checked as it streams in (UploadLimitHandler)
    raise body_too_large(size)


class UploadLimitHandler(FileUploadHandler):
    """First of the upload handlers (core.parsers.StrictMultiPartParser): stops a file as soon as
    it passes SYNTHTUNE_UPLOAD_MAX_BYTES, so no more of it is read or spooled to disk."""

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        self.limit = upload_limit()

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit:
            raise file_too_large(field=self.field_name)
        return raw_data  # on to the handler that stores it

    def file_complete(self, file_size):
        return None  # the next handler's file
