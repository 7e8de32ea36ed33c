"""REST API for datasets and generation jobs: thin views over services and selectors.

Each operation has its own input and output serializers. The collection URLs take
GET (list) and POST (upload / generate) on one view, because dataset names are
free-form and a separate ".../upload/" route would shadow a dataset called "upload".
"""

from __future__ import annotations

from pathlib import PurePosixPath

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from control_plane.core.api import ApiView, IgnoreClientContentNegotiation, paginated_response, validated
from control_plane.core.sse import stream_response, stream_schema
from control_plane.datasets import generation as limits
from control_plane.datasets import selectors, services, versions
from control_plane.datasets.generation import GenerationParams
from control_plane.datasets.models import Dataset, GenerationJob
from synthtune import records

ERROR = OpenApiResponse(description='Error body: {"message", "code", "extra"}')
_FORMAT_CHOICES = list(records.FORMATS)


# --- serializers -------------------------------------------------------------------


class DatasetOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", default=None, read_only=True)
    parent = serializers.CharField(source="parent.name", default=None, read_only=True)

    class Meta:
        model = Dataset
        fields = (
            "name",
            "path",
            "rows",
            "sha256",
            "size_bytes",
            "format",
            "source",
            "status",
            "error",
            "params",
            "family",
            "version",
            "parent",
            "operation",
            "owner",
            "created_at",
            "updated_at",
        )


class DatasetFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Dataset.Status.choices, required=False)
    source = serializers.ChoiceField(choices=Dataset.Source.choices, required=False)
    format = serializers.ChoiceField(choices=Dataset.Format.choices, required=False)
    owner = serializers.CharField(required=False, help_text="Username.")
    search = serializers.CharField(required=False, help_text="Part of the name.")


class DatasetUploadInputSerializer(serializers.Serializer):
    name = serializers.CharField(
        required=False, max_length=256, help_text="Dataset name; defaults to the file name without .jsonl."
    )
    file = serializers.FileField(required=False, help_text="JSONL, multipart/form-data.")
    content = serializers.CharField(
        required=False, trim_whitespace=False, help_text="JSONL text (JSON body)."
    )
    rows = serializers.ListField(child=serializers.JSONField(), required=False, help_text="Rows (JSON body).")

    def validate(self, data):
        given = [key for key in ("file", "content", "rows") if key in data]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"file": "Send exactly one of file (multipart), content (JSONL text) or rows (a list)."}
            )
        if "name" not in data:
            if "file" not in data:
                raise serializers.ValidationError({"name": "This field is required."})
            data["name"] = PurePosixPath(data["file"].name).name.removesuffix(".jsonl")
        return data


class PreviewInputSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=settings.SYNTHTUNE_PREVIEW_MAX_ROWS, default=10)
    format = serializers.ChoiceField(choices=_FORMAT_CHOICES, required=False, help_text="Convert rows.")


class PreviewOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField()
    rows = serializers.ListField(
        child=serializers.JSONField(),
        help_text='With a "metadata" key each when the dataset has row metadata.',
    )


class DownloadInputSerializer(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=_FORMAT_CHOICES, required=False, help_text="Convert every row; omit for the file as stored."
    )
    metadata = serializers.BooleanField(
        default=False, help_text='Each row with a "metadata" key: its provenance and judge scores, or null.'
    )


class GenerateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=256, help_text="Dataset name: letters, digits, '.', '-', '_'.")
    base_url = serializers.CharField(
        max_length=2048, help_text="OpenAI-compatible API, e.g. http://host:8000/v1"
    )
    model = serializers.CharField(max_length=256)
    token = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=8192,
        help_text="Bearer token for the endpoint. Passed to the service, never stored.",
    )
    mode = serializers.ChoiceField(choices=limits.MODES, default="self_instruct")
    num_rows = serializers.IntegerField(
        min_value=1,
        max_value=limits.MAX_ROWS,
        required=False,
        help_text="Rows to generate; defaults to the number of instructions in from_instructions mode.",
    )
    skip_tls_verify = serializers.BooleanField(default=False)
    request_timeout_s = serializers.FloatField(
        min_value=0.1, max_value=limits.MAX_REQUEST_TIMEOUT_S, required=False
    )
    max_retries = serializers.IntegerField(min_value=0, max_value=limits.MAX_RETRIES, required=False)
    concurrency = serializers.IntegerField(min_value=1, max_value=limits.MAX_CONCURRENCY, required=False)
    requests_per_minute = serializers.FloatField(min_value=0, max_value=1_000_000, required=False)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False)
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False)
    max_tokens = serializers.IntegerField(min_value=1, max_value=limits.MAX_TOKENS, required=False)
    system_prompt = serializers.CharField(required=False, allow_blank=True, max_length=limits.MAX_TEXT)
    prompt_template = serializers.CharField(required=False, allow_blank=True, max_length=limits.MAX_TEXT)
    topic = serializers.CharField(required=False, allow_blank=True, max_length=limits.MAX_TEXT)
    seed_examples = serializers.ListField(
        child=serializers.CharField(max_length=limits.MAX_TEXT), required=False, max_length=1000
    )
    instructions = serializers.ListField(
        child=serializers.CharField(max_length=limits.MAX_TEXT), required=False, max_length=limits.MAX_ROWS
    )


class GenerationJobOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name", read_only=True)
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = GenerationJob
        fields = (
            "job_id",
            "dataset",
            "state",
            "target_rows",
            "kept",
            "dropped",
            "failed",
            "percent",
            "prompt_tokens",
            "completion_tokens",
            "error",
            "last_seq",
            "created_at",
            "updated_at",
            "finished_at",
        )


class GenerationJobFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=GenerationJob.State.choices, required=False)
    dataset = serializers.CharField(required=False, help_text="Dataset name.")


class ResumeInputSerializer(serializers.Serializer):
    token = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=8192,
        help_text="The endpoint token again: it was never stored.",
    )


class EventListInputSerializer(serializers.Serializer):
    after_seq = serializers.IntegerField(min_value=0, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=500)


class EventOutputSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    type = serializers.CharField()
    time = serializers.DateTimeField()
    payload = serializers.JSONField()


class EventListOutputSerializer(serializers.Serializer):
    job_id = serializers.CharField()
    state = serializers.CharField()
    finished = serializers.BooleanField()
    events = EventOutputSerializer(many=True)


# --- datasets ------------------------------------------------------------------------


class DatasetCollectionApi(ApiView):
    @extend_schema(
        operation_id="datasets_list",
        parameters=[DatasetFilterSerializer],
        responses={200: DatasetOutputSerializer(many=True)},
    )
    def get(self, request):
        filters = validated(DatasetFilterSerializer, request.query_params)
        return paginated_response(
            queryset=selectors.dataset_list(**filters),
            serializer_class=DatasetOutputSerializer,
            request=request,
            view=self,
        )

    @extend_schema(
        operation_id="datasets_upload",
        request=DatasetUploadInputSerializer,
        responses={201: DatasetOutputSerializer, 400: ERROR, 409: ERROR},
        description="Upload JSONL in the instruction or chat format. Bad lines are reported by number "
        "in extra.errors.",
    )
    def post(self, request):
        data = validated(DatasetUploadInputSerializer, request.data)
        if "file" in data:
            content = data["file"].read()
        elif "content" in data:
            content = data["content"].encode("utf-8")
        else:
            content = services.jsonl_from_rows(data["rows"])
        dataset = services.dataset_upload(owner=request.user, name=data["name"], data=content)
        return Response(DatasetOutputSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(ApiView):
    @extend_schema(operation_id="datasets_retrieve", responses={200: DatasetOutputSerializer, 404: ERROR})
    def get(self, request, name: str):
        return Response(DatasetOutputSerializer(selectors.dataset_get(name=name)).data)


class DatasetPreviewApi(ApiView):
    @extend_schema(
        operation_id="datasets_preview",
        parameters=[PreviewInputSerializer],
        responses={200: PreviewOutputSerializer, 404: ERROR},
    )
    def get(self, request, name: str):
        query = validated(PreviewInputSerializer, request.query_params)
        dataset = selectors.dataset_get(name=name)
        rows = selectors.dataset_preview(dataset=dataset, limit=query["limit"])
        if fmt := query.get("format"):
            rows = [records.convert(row, fmt) for row in rows]
        rows = versions.rows_with_metadata(rows, dataset)
        return Response({"name": dataset.name, "status": dataset.status, "rows": rows})


class DatasetDownloadApi(ApiView):
    content_negotiation_class = IgnoreClientContentNegotiation

    @extend_schema(
        operation_id="datasets_download",
        parameters=[DownloadInputSerializer],
        responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY, 400: ERROR, 404: ERROR},
    )
    def get(self, request, name: str):
        query = validated(DownloadInputSerializer, request.query_params)
        dataset = selectors.dataset_get(name=name)
        fmt = query.get("format")
        if query["metadata"]:
            chunks = versions.dataset_export_with_metadata(dataset=dataset, fmt=fmt)
        else:
            chunks = selectors.dataset_export(dataset=dataset, fmt=fmt)
        response = StreamingHttpResponse(chunks, content_type="application/x-ndjson; charset=utf-8")
        filename = f"{dataset.name}.{fmt}.jsonl" if fmt else f"{dataset.name}.jsonl"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


# --- generation jobs --------------------------------------------------------------------


class GenerationJobCollectionApi(ApiView):
    @extend_schema(
        operation_id="generation_jobs_list",
        parameters=[GenerationJobFilterSerializer],
        responses={200: GenerationJobOutputSerializer(many=True)},
    )
    def get(self, request):
        filters = validated(GenerationJobFilterSerializer, request.query_params)
        return paginated_response(
            queryset=selectors.generation_job_list(**filters),
            serializer_class=GenerationJobOutputSerializer,
            request=request,
            view=self,
        )

    @extend_schema(
        operation_id="generation_jobs_generate",
        request=GenerateInputSerializer,
        responses={202: GenerationJobOutputSerializer, 400: ERROR, 409: ERROR, 503: ERROR},
        description="Start generating a dataset on the datagen service. Progress: the job's events.",
    )
    def post(self, request):
        data = dict(validated(GenerateInputSerializer, request.data))
        token = data.pop("token", "")
        job = services.dataset_generate(owner=request.user, params=GenerationParams(**data), token=token)
        return Response(GenerationJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class GenerationJobDetailApi(ApiView):
    @extend_schema(
        operation_id="generation_jobs_retrieve", responses={200: GenerationJobOutputSerializer, 404: ERROR}
    )
    def get(self, request, job_id: str):
        return Response(GenerationJobOutputSerializer(selectors.generation_job_get(job_id=job_id)).data)


class GenerationJobCancelApi(ApiView):
    @extend_schema(
        operation_id="generation_jobs_cancel",
        request=None,
        responses={202: GenerationJobOutputSerializer, 400: ERROR, 404: ERROR, 503: ERROR},
        description="Ask the service to cancel; the state becomes cancelled with the job's next events.",
    )
    def post(self, request, job_id: str):
        job = services.generation_cancel(job=selectors.generation_job_get(job_id=job_id))
        return Response(GenerationJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class GenerationJobResumeApi(ApiView):
    @extend_schema(
        operation_id="generation_jobs_resume",
        request=ResumeInputSerializer,
        responses={202: GenerationJobOutputSerializer, 400: ERROR, 404: ERROR, 503: ERROR},
    )
    def post(self, request, job_id: str):
        data = validated(ResumeInputSerializer, request.data)
        job = selectors.generation_job_get(job_id=job_id)
        job = services.generation_resume(job=job, token=data.get("token", ""))
        return Response(GenerationJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class GenerationJobEventsApi(ApiView):
    @extend_schema(
        operation_id="generation_jobs_events",
        parameters=[EventListInputSerializer],
        responses={200: EventListOutputSerializer, 404: ERROR},
    )
    def get(self, request, job_id: str):
        query = validated(EventListInputSerializer, request.query_params)
        job = selectors.generation_job_get(job_id=job_id)
        events = selectors.job_event_list(job=job, after_seq=query["after_seq"], limit=query["limit"])
        body = {
            "job_id": job.job_id,
            "state": job.state,
            "finished": job.is_finished,
            "events": [event.as_dict() for event in events],
        }
        return Response(body)


class GenerationJobEventStreamApi(ApiView):
    content_negotiation_class = IgnoreClientContentNegotiation

    @stream_schema(operation_id="generation_jobs_events_stream", subject="job")
    def get(self, request, job_id: str):
        job = selectors.generation_job_get(job_id=job_id)
        return stream_response(
            request,
            finished_now=job.is_finished,
            last_seq=job.last_seq,
            fetch_after=lambda seq: selectors.job_event_list(job=job, after_seq=seq, limit=200),
            finished=lambda: selectors.generation_job_is_finished(job=job),
        )
