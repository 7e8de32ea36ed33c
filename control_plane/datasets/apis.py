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

from control_plane.core.api import (
    ApiView,
    EventStreamApi,
    IgnoreClientContentNegotiation,
    paginated_response,
    validated,
    validated_query,
)
from control_plane.core.schema import DATASET_REF_SCHEMA, FIELD_PATCHES, HTTP_URL, NAME_SCHEMA
from control_plane.core.sse import stream_response, stream_schema
from control_plane.core.validators import top_p_above_zero
from control_plane.datasets import generation as limits
from control_plane.datasets import selectors, services, versions
from control_plane.datasets.generation import CurateParams, GenerationParams
from control_plane.datasets.models import Dataset, GenerationJob
from synthtune import records

ERROR = OpenApiResponse(description='Error body: {"message", "code", "extra"}')
_FORMAT_CHOICES = list(records.FORMATS)


# --- serializers -------------------------------------------------------------------


def _mode_rules() -> list[dict]:
    """generation.GenerationParams' inputs per mode, each "mode is not X, or X's inputs" (mode
    defaults to self_instruct): num_rows unless from_instructions; fixed: a prompt_template and
    no near-duplicate filter on; self_instruct, evol_instruct: a topic or seed_examples;
    topic_tree: a topic; from_instructions: instructions. And no input of another mode."""

    def mode_is(*modes: str) -> dict:
        return {"required": ["mode"], "properties": {"mode": {"enum": list(modes)}}}

    def given(field: str) -> dict:  # a text that is not blank (the serializer trims it)
        return {"required": [field], "properties": {field: {"pattern": "\\S"}}}

    def listed(field: str) -> dict:  # a list's items are never blank (the serializer refuses one)
        return {"required": [field], "properties": {field: {"minItems": 1}}}

    near_dup_on = {
        "required": ["filters"],
        "properties": {
            "filters": {
                "required": ["near_dup"],
                "properties": {"near_dup": {"not": {"required": ["enabled"], "properties": {"enabled": {"enum": [False]}}}}},
            }
        },
    }
    others = [mode for mode in limits.MODES if mode not in ("self_instruct", "evol_instruct")]
    default = {"not": {"required": ["mode"]}}  # self_instruct
    # datagen's spec: an input of another mode is refused, not ignored.
    only_with = {
        "prompt_template": (given("prompt_template"), ["fixed"]),
        "topic": (given("topic"), ["self_instruct", "evol_instruct", "topic_tree"]),
        "seed_examples": (listed("seed_examples"), ["self_instruct", "evol_instruct"]),
        "instructions": (listed("instructions"), ["from_instructions"]),
    }
    return [
        *(
            {"anyOf": [{"not": present}, mode_is(*modes), *([default] if "self_instruct" in modes else [])]}
            for present, modes in only_with.values()
        ),
        {"anyOf": [{"required": ["num_rows"]}, mode_is("from_instructions")]},
        {"anyOf": [{"not": mode_is("fixed")}, {"allOf": [given("prompt_template"), {"not": near_dup_on}]}]},
        {"anyOf": [mode_is(*others), given("topic"), listed("seed_examples")]},
        {"anyOf": [{"not": mode_is("topic_tree")}, given("topic")]},
        {"anyOf": [{"not": mode_is("from_instructions")}, listed("instructions")]},
    ]


# What generation.GenerationParams checks beyond the serializers, for the schema (core.schema).
FIELD_PATCHES.update(
    {
        "NearDupInputRequest": {
            "threshold": {"minimum": limits.NEAR_DUP_ABOVE, "exclusiveMinimum": True, "maximum": 1}
        },
        "DecontamInputRequest": {
            # generation.DecontamParams: at least one evaluation set.
            "": {
                "anyOf": [
                    {"required": ["eval_datasets"], "properties": {"eval_datasets": {"minItems": 1}}},
                    {"required": ["eval_adapters"], "properties": {"eval_adapters": {"minItems": 1}}},
                ]
            },
            "eval_datasets": {"items": DATASET_REF_SCHEMA},
            "eval_adapters": {"items": NAME_SCHEMA},
            "ngram": {"minimum": limits.MIN_NGRAM, "maximum": limits.MAX_NGRAM},
            "threshold": {"minimum": 0, "exclusiveMinimum": True, "maximum": 1},
        },
        "JudgeInputRequest": {
            "concurrency": {"minimum": 1, "maximum": limits.MAX_CONCURRENCY},
            "min_score": {"minimum": limits.MIN_SCORE, "maximum": limits.MAX_SCORE},
            "rubric": {"maxItems": limits.MAX_CRITERIA},
        },
        "CriterionRequest": {
            # "reason" is the judge's own key in its answer.
            "name": {
                "pattern": "^\\s*" + limits._CRITERION_NAME.pattern[1:-1] + "\\s*$",
                "not": {"pattern": "^\\s*reason\\s*$"},
            }
        },
        "DatasetUploadInputRequest": {"name": NAME_SCHEMA},
        "GenerateInputRequest": {
            "name": NAME_SCHEMA,
            "top_p": {"exclusiveMinimum": True},  # core.validators.top_p_above_zero, as datagen
            # generation.GenerationParams: a mode's settings only with that mode, and each mode's
            # inputs (_mode_rules).
            "": {
                "allOf": [
                    *(
                        {
                            "anyOf": [
                                {"not": {"required": [settings]}},
                                {"required": ["mode"], "properties": {"mode": {"enum": [settings]}}},
                            ]
                        }
                        for settings in ("evol_instruct", "topic_tree")
                    ),
                    *_mode_rules(),
                ]
            },
        },
        "CurateInputRequest": {"name": NAME_SCHEMA},
        "MergeInputRequest": {"name": NAME_SCHEMA, "sources": {"items": DATASET_REF_SCHEMA, "uniqueItems": True}},
        "EditInputRequest": {"name": NAME_SCHEMA},
    }
)


class EndpointUrlField(serializers.CharField):
    """An OpenAI-compatible API's URL (a teacher, a judge); generation.GenerationParams checks it."""

    schema_pattern = HTTP_URL


class DatasetOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", default=None, read_only=True, allow_null=True)
    parent = serializers.CharField(source="parent.name", default=None, read_only=True, allow_null=True)

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


class JsonlBodySerializer(serializers.Serializer):
    """A dataset body given one of three ways (an upload, a new version)."""

    file = serializers.FileField(required=False, help_text="JSONL, multipart/form-data.")
    content = serializers.CharField(
        required=False, trim_whitespace=False, help_text="JSONL text (JSON body)."
    )
    rows = serializers.ListField(child=serializers.JSONField(), required=False, help_text="Rows (JSON body).")

    def validate(self, data):
        if len([key for key in ("file", "content", "rows") if key in data]) != 1:
            raise serializers.ValidationError(
                {"file": "Send exactly one of file (multipart), content (JSONL text) or rows (a list)."}
            )
        return data


class DatasetUploadInputSerializer(JsonlBodySerializer):
    name = serializers.CharField(
        required=False, max_length=256, help_text="Dataset name; defaults to the file name without .jsonl."
    )

    def validate(self, data):
        data = super().validate(data)
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


class NearDupInputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(default=True)
    threshold = serializers.FloatField(
        required=False,
        help_text="Instruction similarity (MinHash Jaccard) from which two rows are near duplicates, "
        "greater than 0.5 and at most 1; default 0.8. The first row of a cluster is kept.",
    )


class DecontamInputSerializer(serializers.Serializer):
    eval_datasets = serializers.ListField(
        child=serializers.CharField(max_length=256),
        required=False,
        max_length=limits.MAX_EVAL_SETS,
        help_text="Names of ready datasets whose rows must not leak into this one.",
    )
    eval_adapters = serializers.ListField(
        child=serializers.CharField(max_length=256),
        required=False,
        max_length=limits.MAX_EVAL_SETS,
        help_text="Names of adapters whose held-out eval split (eval.jsonl) must not leak into this one.",
    )
    ngram = serializers.IntegerField(required=False, help_text="Word n-gram length, 3 to 50; default 8.")
    threshold = serializers.FloatField(
        required=False,
        help_text="Share of shared n-grams from which a row is dropped, greater than 0 and at most 1; "
        "default 0.5.",
    )


class CriterionSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=40, help_text="Lower-case letters, digits and '_'.")
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=limits.MAX_CRITERION_DESCRIPTION, default=""
    )


class JudgeInputSerializer(serializers.Serializer):
    base_url = EndpointUrlField(
        max_length=2048, help_text="The judge: an OpenAI-compatible API, e.g. http://host:8000/v1"
    )
    model = serializers.CharField(max_length=256)
    token = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=8192,
        help_text="Bearer token for the judge. Passed to the service, never stored.",
    )
    concurrency = serializers.IntegerField(required=False, help_text="Judge requests in flight; default 8.")
    request_timeout_s = serializers.FloatField(
        min_value=0.1, max_value=limits.MAX_REQUEST_TIMEOUT_S, required=False
    )
    rubric = CriterionSerializer(
        many=True,
        required=False,
        help_text="Criteria scored 1 to 5; default helpfulness, correctness, instruction_following.",
    )
    min_score = serializers.FloatField(
        required=False, help_text="Rows whose mean score is below this are dropped, 1 to 5; default 3."
    )


class FiltersInputSerializer(serializers.Serializer):
    near_dup = NearDupInputSerializer(required=False, help_text="Drop near-duplicate instructions.")
    decontam = DecontamInputSerializer(required=False, help_text="Drop rows overlapping evaluation sets.")
    judge = JudgeInputSerializer(required=False, help_text="Score rows with an LLM judge; drop low scores.")


class EvolInstructInputSerializer(serializers.Serializer):
    rounds = serializers.IntegerField(
        min_value=1,
        max_value=limits.MAX_EVOL_ROUNDS,
        required=False,
        help_text="Evolutions per row; default 2.",
    )
    breadth_share = serializers.FloatField(
        min_value=0, max_value=1, required=False, help_text="Share of evolutions in breadth; default 0.25."
    )


class TopicTreeInputSerializer(serializers.Serializer):
    depth = serializers.IntegerField(
        min_value=1,
        max_value=limits.MAX_TREE_DEPTH,
        required=False,
        help_text="Levels of subtopics; default 2.",
    )
    breadth = serializers.IntegerField(
        min_value=1,
        max_value=limits.MAX_TREE_BREADTH,
        required=False,
        help_text="Subtopics per node; default 3.",
    )


def filters_and_judge_token(data: dict) -> tuple[dict, str]:
    """Validated `filters` as plain dicts, with the judge's token taken out (it travels beside them)."""
    filters = {key: dict(value) for key, value in (data.get("filters") or {}).items()}
    token = filters["judge"].pop("token", "") if "judge" in filters else ""
    if "judge" in filters and "rubric" in filters["judge"]:
        filters["judge"]["rubric"] = [dict(c) for c in filters["judge"]["rubric"]]
    return filters, token


class CurateInputSerializer(serializers.Serializer):
    name = serializers.CharField(
        required=False,
        max_length=256,
        help_text="The new dataset's name; defaults to the source's next version name.",
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="Curate this version of the dataset's family."
    )
    filters = FiltersInputSerializer(required=False, help_text="Quality filters; each one left out is off.")
    num_rows = serializers.IntegerField(
        min_value=1,
        max_value=limits.MAX_ROWS,
        required=False,
        help_text="Curate only the source's first rows; default every row.",
    )


class GenerateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=256, help_text="Dataset name: letters, digits, '.', '-', '_'.")
    base_url = EndpointUrlField(
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
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False, validators=[top_p_above_zero])
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
    evol_instruct = EvolInstructInputSerializer(required=False, help_text="evol_instruct mode's settings.")
    topic_tree = TopicTreeInputSerializer(required=False, help_text="topic_tree mode's settings.")
    filters = FiltersInputSerializer(required=False, help_text="Quality filters; each one left out is off.")


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
            "judge_prompt_tokens",
            "judge_completion_tokens",
            "report",
            "metadata_path",
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
    judge_token = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=8192,
        help_text="The judge endpoint's token again, when the job has a judge.",
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
        filters = validated_query(DatasetFilterSerializer, request.query_params)
        return paginated_response(
            queryset=selectors.dataset_list(**filters),
            serializer_class=DatasetOutputSerializer,
            request=request,
            view=self,
        )

    @extend_schema(
        operation_id="datasets_upload",
        request=DatasetUploadInputSerializer,
        responses={201: DatasetOutputSerializer, 400: ERROR, 409: ERROR, 413: ERROR, 507: ERROR},
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
        query = validated_query(PreviewInputSerializer, request.query_params)
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
        query = validated_query(DownloadInputSerializer, request.query_params)
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


class DatasetCurateApi(ApiView):
    @extend_schema(
        operation_id="datasets_curate",
        request=CurateInputSerializer,
        responses={202: GenerationJobOutputSerializer, 400: ERROR, 404: ERROR, 409: ERROR, 503: ERROR},
        description="Filter a ready dataset (the URL's name, or name@N) into a new version of it (a curate "
        "job on the datagen service: no teacher); an unknown dataset or version is 404 (field parent). "
        "Exact duplicates and empty outputs are always dropped; `filters` adds near "
        "duplicates, decontamination and an LLM judge. Progress: the job's events; the job's `report` "
        "says what each check dropped.",
    )
    def post(self, request, name: str):
        data = dict(validated(CurateInputSerializer, request.data))
        parent = versions.dataset_version_get(ref=name, version=data.get("version"), field="parent")
        filters, judge_token = filters_and_judge_token(data)
        params = CurateParams(
            name=data.get("name", ""),
            filters=filters,
            num_rows=data.get("num_rows"),
        )
        job = services.dataset_curate(
            owner=request.user, parent=parent, params=params, judge_token=judge_token
        )
        return Response(GenerationJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


# --- generation jobs --------------------------------------------------------------------


class GenerationJobCollectionApi(ApiView):
    @extend_schema(
        operation_id="generation_jobs_list",
        parameters=[GenerationJobFilterSerializer],
        responses={200: GenerationJobOutputSerializer(many=True)},
    )
    def get(self, request):
        filters = validated_query(GenerationJobFilterSerializer, request.query_params)
        return paginated_response(
            queryset=selectors.generation_job_list(**filters),
            serializer_class=GenerationJobOutputSerializer,
            request=request,
            view=self,
        )

    @extend_schema(
        operation_id="generation_jobs_generate",
        request=GenerateInputSerializer,
        responses={202: GenerationJobOutputSerializer, 400: ERROR, 404: ERROR, 409: ERROR, 503: ERROR},
        description="Start generating a dataset on the datagen service. Progress: the job's events.",
    )
    def post(self, request):
        data = dict(validated(GenerateInputSerializer, request.data))
        token = data.pop("token", "")
        data["filters"], judge_token = filters_and_judge_token(data)
        for name in ("evol_instruct", "topic_tree"):
            if name in data:
                data[name] = dict(data[name])
        job = services.dataset_generate(
            owner=request.user, params=GenerationParams(**data), token=token, judge_token=judge_token
        )
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
        job = services.generation_resume(
            job=job, token=data.get("token", ""), judge_token=data.get("judge_token", "")
        )
        return Response(GenerationJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class GenerationJobEventsApi(ApiView):
    @extend_schema(
        operation_id="generation_jobs_events",
        parameters=[EventListInputSerializer],
        responses={200: EventListOutputSerializer, 404: ERROR},
    )
    def get(self, request, job_id: str):
        query = validated_query(EventListInputSerializer, request.query_params)
        job = selectors.generation_job_get(job_id=job_id)
        events = selectors.job_event_list(job=job, after_seq=query["after_seq"], limit=query["limit"])
        body = {
            "job_id": job.job_id,
            "state": job.state,
            "finished": job.is_finished,
            "events": [event.as_dict() for event in events],
        }
        return Response(body)


class GenerationJobEventStreamApi(EventStreamApi):
    @stream_schema(operation_id="generation_jobs_events_stream", subject="job")
    def get(self, request, job_id: str):
        job = selectors.generation_job_get(job_id=job_id)
        return stream_response(
            request,
            finished_now=job.is_finished,
            last_seq=job.last_seq,
            fetch_after=lambda seq: selectors.job_event_list(job=job, after_seq=seq, limit=200),
            subject=job,
        )
