"""/v1/files: OpenAI's Files API over synthtune's datasets.

An uploaded file is validated like any upload (control_plane.datasets.services.dataset_upload)
and becomes a dataset named after the file (`train.jsonl` -> `train-3fa9c2`); every dataset is
listed as a file, so one generated or curated in synthtune can be the training_file of a job.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from secrets import token_hex

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from control_plane.core.api import IgnoreClientContentNegotiation, validated, validated_query
from control_plane.core.errors import NotFound
from control_plane.datasets import selectors as dataset_selectors
from control_plane.datasets import services as dataset_services
from control_plane.datasets.models import Dataset
from control_plane.openai_api import shapes
from control_plane.openai_api.base import OpenAIApiView, cursor_page, list_body
from control_plane.openai_api.schema import ERROR, FILE, FILE_DELETED, FILE_LIST, TAG

PURPOSE = "fine-tune"
MAX_LIST_LIMIT = 10_000  # OpenAI's bound and default
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def dataset_name_for(filename: str) -> str:
    """A fresh dataset name from an uploaded file's name: its stem made safe, plus 6 hex digits."""
    stem = _UNSAFE.sub("-", PurePath(filename or "upload").stem).strip("-._")[:100] or "upload"
    if not stem[0].isalnum():
        stem = f"f{stem}"
    return f"{stem}-{token_hex(3)}"


def file_dataset(file_id: str) -> Dataset:
    name = shapes.unprefixed(file_id, shapes.FILE_PREFIX, "file")
    try:
        return dataset_selectors.dataset_get(name=name)
    except NotFound:
        raise NotFound(f"No such file: {file_id!r}.") from None


class OpenAIFileUploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL: OpenAI's chat format ({\"messages\": [...]}) or "
                                 "synthtune's instruction format; validated line by line.")
    purpose = serializers.ChoiceField(choices=[PURPOSE], help_text="Only fine-tune files are stored here.")


class OpenAIFileListInputSerializer(serializers.Serializer):
    # Ids and names are taken as given, not trimmed: DRF trims before max_length, so a value over
    # the schema's maxLength would pass once trimmed.
    purpose = serializers.CharField(required=False, max_length=64, trim_whitespace=False)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIST_LIMIT, default=MAX_LIST_LIMIT)
    order = serializers.ChoiceField(choices=["asc", "desc"], default="desc")
    after = serializers.CharField(
        required=False, max_length=200, trim_whitespace=False, help_text="A file id: the page after it."
    )


class FileCollectionApi(OpenAIApiView):
    param_names = {"name": "file"}

    @extend_schema(
        operation_id="openai_files_list", tags=[TAG], parameters=[OpenAIFileListInputSerializer],
        responses={200: FILE_LIST, 400: ERROR, 401: ERROR, 404: ERROR},
    )
    def get(self, request):
        query = validated_query(OpenAIFileListInputSerializer, request.query_params)
        if query.get("purpose", PURPOSE) != PURPOSE:
            return Response(list_body([], has_more=False, ids=True))
        after = file_dataset(query["after"]) if "after" in query else None
        datasets, has_more = cursor_page(
            dataset_selectors.dataset_list(), after=after, limit=query["limit"], ascending=query["order"] == "asc"
        )
        return Response(list_body([shapes.file_object(d) for d in datasets], has_more=has_more, ids=True))

    @extend_schema(
        operation_id="openai_files_create", tags=[TAG], request={"multipart/form-data": OpenAIFileUploadInputSerializer},
        responses={200: FILE, 400: ERROR, 401: ERROR, 413: ERROR, 507: ERROR},
        description="Upload a JSONL training or validation file; it becomes a dataset.",
    )
    def post(self, request):
        data = validated(OpenAIFileUploadInputSerializer, request.data)
        upload = data["file"]
        dataset = dataset_services.dataset_upload(
            owner=request.user, name=dataset_name_for(upload.name), data=upload.read(), filename=upload.name
        )
        return Response(shapes.file_object(dataset))


class FileDetailApi(OpenAIApiView):
    @extend_schema(operation_id="openai_files_retrieve", tags=[TAG], responses={200: FILE, 401: ERROR, 404: ERROR})
    def get(self, request, file_id: str):
        return Response(shapes.file_object(file_dataset(file_id)))

    @extend_schema(
        operation_id="openai_files_delete", tags=[TAG], responses={200: FILE_DELETED, 400: ERROR, 401: ERROR, 404: ERROR},
        description="Delete the file's dataset; refused while runs or later versions refer to it.",
    )
    def delete(self, request, file_id: str):
        dataset_services.dataset_delete(dataset=file_dataset(file_id))
        return Response({"id": file_id, "object": "file", "deleted": True})


class FileContentApi(OpenAIApiView):
    content_negotiation_class = IgnoreClientContentNegotiation

    @extend_schema(
        operation_id="openai_files_content", tags=[TAG],
        responses={(200, "application/jsonl"): OpenApiTypes.BINARY, 400: ERROR, 401: ERROR, 404: ERROR},
    )
    def get(self, request, file_id: str):
        dataset = file_dataset(file_id)
        chunks = dataset_selectors.dataset_export(dataset=dataset, fmt=None)
        response = StreamingHttpResponse(chunks, content_type="application/jsonl")
        filename = shapes.file_object(dataset)["filename"].replace('"', "")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


