"""REST API for fine-tuning runs and the adapters they export: thin views over services and
selectors, each operation with its own input and output serializers."""

from __future__ import annotations

from django.http import HttpResponse
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
from control_plane.core.schema import EXACT_NAME_SCHEMA, FIELD_PATCHES, MODEL_ID, NAME_SCHEMA
from control_plane.core.sse import stream_response, stream_schema
from control_plane.runs import params as limits
from control_plane.runs import selectors, services
from control_plane.runs.models import Adapter, Run, RunEvent
from control_plane.runs.params import RunParams

ERROR = OpenApiResponse(description='Error body: {"message", "code", "extra"}')


# --- serializers -------------------------------------------------------------------


class HyperparametersInputSerializer(serializers.Serializer):
    """Every field optional: unset ones take the trainer's per-device defaults."""

    lora_r = serializers.IntegerField(
        min_value=1, max_value=limits.MAX_RANK, required=False, help_text="LoRA rank."
    )
    lora_alpha = serializers.FloatField(
        min_value=0, max_value=limits.MAX_ALPHA, required=False, help_text="> 0; default 2 * lora_r."
    )
    lora_dropout = serializers.FloatField(min_value=0, max_value=1, required=False, help_text="In [0, 1).")
    target_modules = serializers.ListField(
        child=serializers.CharField(max_length=128),
        max_length=limits.MAX_TARGET_MODULES,
        required=False,
        help_text='Module names, or ["all-linear"]; empty: resolved per architecture. A list that '
        "misses part of the model is refused.",
    )
    epochs = serializers.FloatField(
        min_value=0, max_value=limits.MAX_EPOCHS, required=False, help_text="In (0, 100]; fractions allowed."
    )
    learning_rate = serializers.FloatField(
        min_value=0, max_value=limits.MAX_LEARNING_RATE, required=False, help_text="In (0, 1]."
    )
    batch_size = serializers.IntegerField(min_value=1, max_value=limits.MAX_BATCH_SIZE, required=False)
    gradient_accumulation_steps = serializers.IntegerField(
        min_value=1, max_value=limits.MAX_GRAD_ACCUM, required=False
    )
    max_length = serializers.IntegerField(
        min_value=limits.MIN_MAX_LENGTH,
        max_value=limits.MAX_MAX_LENGTH,
        required=False,
        help_text="Tokens per row; at most the model's context length.",
    )
    eval_fraction = serializers.FloatField(
        min_value=0,
        max_value=limits.MAX_EVAL_FRACTION,
        required=False,
        help_text="Held-out share, in [0, 0.5); not used with eval_datasets.",
    )
    packing = serializers.BooleanField(required=False, allow_null=True, help_text="Padding-free packing.")
    seed = serializers.IntegerField(min_value=0, max_value=limits.MAX_SEED, required=False)
    device = serializers.ChoiceField(choices=limits.DEVICES, required=False)
    quantize_4bit = serializers.BooleanField(required=False, allow_null=True, help_text="QLoRA; CUDA only.")
    keep_checkpoints = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="Keep the checkpoints once the run has succeeded (default: deleted after the export).",
    )
    eval_steps = serializers.IntegerField(
        min_value=0,
        max_value=limits.MAX_EVAL_STEPS,
        required=False,
        help_text="Evaluate the held-out split every N optimizer steps; 0 (default): at every epoch's end.",
    )
    eval_generate_rows = serializers.IntegerField(
        min_value=0,
        max_value=limits.MAX_EVAL_GENERATE_ROWS,
        required=False,
        help_text="At each eval, also answer this many held-out rows and report exact match and chrF; "
        "0 (default): loss and token accuracy only.",
    )
    eval_max_new_tokens = serializers.IntegerField(
        min_value=1, max_value=limits.MAX_EVAL_NEW_TOKENS, required=False, help_text="Default 128."
    )
    best_metric = serializers.ChoiceField(
        choices=limits.BEST_METRICS,
        required=False,
        help_text="The eval metric that picks the exported checkpoint and drives early stopping "
        "(default eval_loss; eval_exact_match and eval_chrf need eval_generate_rows).",
    )
    export_best = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="Export the best checkpoint (default) rather than the last step's weights.",
    )
    early_stopping_patience = serializers.IntegerField(
        min_value=0,
        max_value=limits.MAX_PATIENCE,
        required=False,
        help_text="Stop after N evals without improvement; 0 (default): never.",
    )
    early_stopping_threshold = serializers.FloatField(
        min_value=0,
        max_value=limits.MAX_THRESHOLD,
        required=False,
        help_text="The least change that counts as an improvement; default 0.",
    )
    report_to = serializers.ChoiceField(
        choices=limits.REPORT_TO,
        required=False,
        help_text="none (default), mlflow (the trainer's MLflow tracking URI) or tensorboard.",
    )
    num_nodes = serializers.IntegerField(
        min_value=1, max_value=limits.MAX_NODES, required=False, help_text="Machines; default 1."
    )
    processes_per_node = serializers.IntegerField(
        min_value=1,
        max_value=limits.MAX_PROCESSES_PER_NODE,
        required=False,
        help_text="Training processes per machine (data parallel); default one per visible GPU, else 1. "
        "More than one needs the trainer's SYNTHTUNE_TRAINER_LAUNCHER=torchrun.",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {unknown[0]: f"Unknown hyperparameter; known: {', '.join(self.fields)}."}
                )
        return super().to_internal_value(data)


# What params.RunParams checks beyond the serializer, for the schema (core.schema).
FIELD_PATCHES["HyperparametersInputRequest"] = {
    # params._NUMBERS' ranges, open ends included.
    **{
        name: {
            "minimum": low,
            "maximum": high,
            **({"exclusiveMinimum": True} if low_open else {}),
            **({"exclusiveMaximum": True} if high_open else {}),
        }
        for name, (_kind, low, high, low_open, high_open) in limits._NUMBERS.items()
    },
    "": {"additionalProperties": False},  # an unknown hyperparameter is a 400
    # params._MODULE_RE, never "..": a letter, digit or '_' first.
    "target_modules": {"items": {"pattern": "^\\s*[A-Za-z0-9_](\\.?[A-Za-z0-9_-])*\\.?\\s*$"}},
}
FIELD_PATCHES["RunCreateInputRequest"] = {
    "datasets": {"minItems": 1, "uniqueItems": True, "items": EXACT_NAME_SCHEMA},
    "eval_datasets": {"uniqueItems": True, "items": EXACT_NAME_SCHEMA},
    "base_model": {"pattern": MODEL_ID},
    "adapter_name": {"pattern": NAME_SCHEMA["pattern"], "maxLength": 100},  # "-v<N>" goes after it
}


class RunCreateInputSerializer(serializers.Serializer):
    # Names as given, not trimmed: " a" and "a" are not two ways to name one dataset twice.
    datasets = serializers.ListField(
        child=serializers.CharField(max_length=256, trim_whitespace=False),
        max_length=limits.MAX_DATASETS,
        help_text="Names of ready datasets; their rows are trained on together.",
    )
    eval_datasets = serializers.ListField(
        child=serializers.CharField(max_length=256, trim_whitespace=False),
        max_length=limits.MAX_DATASETS,
        required=False,
        default=list,
        help_text="Names of ready datasets to evaluate on (OpenAI's validation_file): the eval split is "
        "exactly their rows, and nothing is held out of datasets (eval_fraction is not used). None may "
        "also be in datasets. Empty (default): eval_fraction of the datasets is held out.",
    )
    base_model = serializers.CharField(
        max_length=256,
        default=limits.DEFAULT_BASE_MODEL,
        help_text="Canonical model id, recorded in the adapter; the trainer loads a local copy.",
    )
    hyperparameters = HyperparametersInputSerializer(required=False)
    adapter_name = serializers.CharField(
        max_length=256,
        required=False,
        allow_blank=True,
        default="",
        help_text="Stem of the adapter's versioned name (<stem>-v<N>); default from the base model.",
    )
    merge_full_model = serializers.BooleanField(default=False, help_text="Also export a merged full model.")


class RunOutputSerializer(serializers.ModelSerializer):
    datasets = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    eval_datasets = serializers.SlugRelatedField(
        many=True,
        read_only=True,
        slug_field="name",
        help_text="The datasets the run evaluates on; empty when its eval split is held out of datasets.",
    )
    adapter = serializers.CharField(source="adapter.name", default=None, read_only=True, allow_null=True)
    owner = serializers.CharField(source="owner.username", default=None, read_only=True)
    percent = serializers.IntegerField(read_only=True)
    world_size = serializers.IntegerField(read_only=True, help_text="Processes the run trains in.")
    effective_batch_size = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="batch_size x gradient_accumulation_steps x world_size."
    )

    class Meta:
        model = Run
        fields = (
            "run_id",
            "state",
            "base_model",
            "datasets",
            "dataset_reports",
            "eval_datasets",
            "eval_dataset_reports",
            "train_rows",
            "eval_rows",
            "truncated_rows",
            "hyperparameters",
            "config",
            "adapter_name",
            "merge_full_model",
            "error",
            "step",
            "max_steps",
            "epoch",
            "percent",
            "metrics",
            "prompt_format",
            "queue_position",
            "world_size",
            "effective_batch_size",
            "resumed_from_step",
            "resumes",
            "adapter",
            "owner",
            "last_seq",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        )


class RunFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Run.State.choices, required=False)
    base_model = serializers.CharField(required=False)
    dataset = serializers.CharField(required=False, help_text="Dataset name.")
    owner = serializers.CharField(required=False, help_text="Username.")


class RunEventListInputSerializer(serializers.Serializer):
    after_seq = serializers.IntegerField(min_value=0, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=500)
    type = serializers.MultipleChoiceField(
        choices=RunEvent.Type.choices, required=False, help_text="Only these types (repeat the parameter)."
    )


class RunEventOutputSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    type = serializers.CharField()
    time = serializers.DateTimeField()
    payload = serializers.JSONField()


class RunEventListOutputSerializer(serializers.Serializer):
    run_id = serializers.CharField()
    state = serializers.CharField()
    finished = serializers.BooleanField()
    events = RunEventOutputSerializer(many=True)


class AdapterOutputSerializer(serializers.ModelSerializer):
    run = serializers.CharField(source="run.run_id", default=None, read_only=True)

    class Meta:
        model = Adapter
        fields = (
            "name",
            "path",
            "run",
            "base_model",
            "prompt_format",
            "weights_sha256",
            "merged_model_path",
            "created_at",
        )


class AdapterDetailOutputSerializer(AdapterOutputSerializer):
    class Meta(AdapterOutputSerializer.Meta):
        fields = (*AdapterOutputSerializer.Meta.fields, "manifest")


class AdapterFilterSerializer(serializers.Serializer):
    base_model = serializers.CharField(required=False)
    run = serializers.CharField(required=False, help_text="Run id.")
    search = serializers.CharField(required=False, help_text="Part of the name.")


# --- runs ----------------------------------------------------------------------------


class RunCollectionApi(ApiView):
    @extend_schema(
        operation_id="runs_list",
        parameters=[RunFilterSerializer],
        responses={200: RunOutputSerializer(many=True)},
    )
    def get(self, request):
        filters = validated_query(RunFilterSerializer, request.query_params)
        return paginated_response(
            queryset=selectors.run_list(**filters),
            serializer_class=RunOutputSerializer,
            request=request,
            view=self,
        )

    @extend_schema(
        operation_id="runs_create",
        request=RunCreateInputSerializer,
        responses={202: RunOutputSerializer, 400: ERROR, 404: ERROR, 503: ERROR},
        description="Start a LoRA fine-tune on the trainer service. Bad settings (also those only the "
        "trainer can judge: the model's context length, LoRA targets) are 400 naming the field in "
        "extra.field. Progress: the run's events.",
    )
    def post(self, request):
        data = dict(validated(RunCreateInputSerializer, request.data))
        data["hyperparameters"] = dict(data.get("hyperparameters") or {})
        run = services.run_start(owner=request.user, params=RunParams(**data))
        return Response(RunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailApi(ApiView):
    @extend_schema(operation_id="runs_retrieve", responses={200: RunOutputSerializer, 404: ERROR})
    def get(self, request, run_id: str):
        return Response(RunOutputSerializer(selectors.run_get(run_id=run_id)).data)


class RunCancelApi(ApiView):
    @extend_schema(
        operation_id="runs_cancel",
        request=None,
        responses={202: RunOutputSerializer, 400: ERROR, 404: ERROR, 503: ERROR},
        description="Ask the trainer to cancel (a running run stops within one step); the state "
        "becomes cancelled with the run's next events. A cancelled run exports nothing.",
    )
    def post(self, request, run_id: str):
        run = services.run_cancel(run=selectors.run_get(run_id=run_id))
        return Response(RunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunResumeApi(ApiView):
    @extend_schema(
        operation_id="runs_resume",
        request=None,
        responses={202: RunOutputSerializer, 400: ERROR, 404: ERROR, 503: ERROR},
        description="Queue a failed run again: it goes on from its newest checkpoint (the trainer saves "
        "one every SYNTHTUNE_TRAINER_CHECKPOINT_STEPS steps and at each epoch's end), or starts over "
        "when it has none. 400 (FAILED_PRECONDITION) for a run that has not failed.",
    )
    def post(self, request, run_id: str):
        run = services.run_resume(run=selectors.run_get(run_id=run_id))
        return Response(RunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunEventsApi(ApiView):
    @extend_schema(
        operation_id="runs_events",
        parameters=[RunEventListInputSerializer],
        responses={200: RunEventListOutputSerializer, 404: ERROR},
        description="Stored events in seq order. Step and eval events are the metric history.",
    )
    def get(self, request, run_id: str):
        query = validated_query(RunEventListInputSerializer, request.query_params)
        run = selectors.run_get(run_id=run_id)
        events = selectors.run_event_list(
            run=run, after_seq=query["after_seq"], limit=query["limit"], types=sorted(query.get("type") or ())
        )
        body = {
            "run_id": run.run_id,
            "state": run.state,
            "finished": run.is_finished,
            "events": [event.as_dict() for event in events],
        }
        return Response(body)


class RunEventStreamApi(EventStreamApi):
    @stream_schema(operation_id="runs_events_stream", subject="run")
    def get(self, request, run_id: str):
        run = selectors.run_get(run_id=run_id)
        return stream_response(
            request,
            finished_now=run.is_finished,
            last_seq=run.last_seq,
            fetch_after=lambda seq: selectors.run_event_list(run=run, after_seq=seq, limit=200),
            subject=run,
        )


# --- adapters --------------------------------------------------------------------------


class AdapterCollectionApi(ApiView):
    @extend_schema(
        operation_id="adapters_list",
        parameters=[AdapterFilterSerializer],
        responses={200: AdapterOutputSerializer(many=True)},
    )
    def get(self, request):
        filters = validated_query(AdapterFilterSerializer, request.query_params)
        return paginated_response(
            queryset=selectors.adapter_list(**filters),
            serializer_class=AdapterOutputSerializer,
            request=request,
            view=self,
        )


class AdapterDetailApi(ApiView):
    @extend_schema(
        operation_id="adapters_retrieve", responses={200: AdapterDetailOutputSerializer, 404: ERROR}
    )
    def get(self, request, name: str):
        return Response(AdapterDetailOutputSerializer(selectors.adapter_get(name=name)).data)


class AdapterManifestApi(ApiView):
    content_negotiation_class = IgnoreClientContentNegotiation

    @extend_schema(
        operation_id="adapters_manifest",
        responses={(200, "application/json"): OpenApiTypes.OBJECT, 404: ERROR},
        description="manifest.json as exported (run id, base model, prompt format, datasets with "
        "sha256, hyperparameters, final metrics, weights sha256), as a download.",
    )
    def get(self, request, name: str):
        adapter = selectors.adapter_get(name=name)
        path = selectors.adapter_manifest_path(adapter=adapter)
        response = HttpResponse(path.read_bytes(), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{adapter.name}.manifest.json"'
        return response
