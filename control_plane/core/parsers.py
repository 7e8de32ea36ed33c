"""A multipart parser that rejects upload file names with folders, instead of trimming them.

Django quietly keeps only the last path component of an upload's file name; a client
that sends '../x.jsonl' or '/etc/x.jsonl' has made a mistake worth telling it about.
"""

from __future__ import annotations

from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser, get_encoding


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
            parser = _StrictNames(meta, stream, request.upload_handlers, get_encoding(parser_context))
            data, files = parser.parse()
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error: {exc}.") from None
        return DataAndFiles(data, files)
