"""A multipart parser that rejects upload file names with folders, instead of trimming them,
and stops a file past SYNTHTUNE_UPLOAD_MAX_BYTES as it streams in (413, core.limits).

Django quietly keeps only the last path component of an upload's file name; a client
that sends '../x.jsonl' or '/etc/x.jsonl' has made a mistake worth telling it about.
"""

from __future__ import annotations

from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser, get_encoding

from control_plane.core.errors import PayloadTooLarge
from control_plane.core.limits import UploadLimitHandler


class _StrictNames(DjangoMultiPartParser):
    def sanitize_file_name(self, file_name):
        if "/" in file_name or "\\" in file_name or ".." in file_name:
            raise MultiPartParserError(
                f"upload file name {file_name[:200]!r} must be a plain file name, without folders or '..'"
            )
        return super().sanitize_file_name(file_name)


class StrictMultiPartParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        try:
            handlers = [UploadLimitHandler(request._request), *request.upload_handlers]
            parser = _StrictNames(meta, stream, handlers, get_encoding(parser_context))
            data, files = parser.parse()
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error: {exc}.") from None
        except PayloadTooLarge:
            # Django closes the files it finished; the one stopped midway is still open in its
            # handler (a spooled temporary file): close it now, which deletes it.
            for handler in handlers:
                if (partial := getattr(handler, "file", None)) is not None:
                    partial.close()
            raise
        return DataAndFiles(data, files)
