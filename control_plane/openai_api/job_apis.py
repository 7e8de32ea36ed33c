"""/v1/fine_tuning/jobs: OpenAI's fine-tuning jobs over synthtune's runs.

A job is a run (control_plane.runs.services.run_start), its events are the run's stored events,
its checkpoints are the run's evals. Hyperparameters map onto synthtune's:
- n_epochs -> epochs, batch_size -> batch_size ("auto": the trainer's default for the model);
- learning_rate_multiplier -> learning_rate = multiplier x 2e-4, the trainer's default
  ("auto" and 1.0 both give 2e-4);
- seed -> seed, suffix -> the adapter's name stem (fine_tuned_model is `<suffix>-v<N>`),
  validation_file -> the run's eval dataset (instead of holding rows out of the training file).
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from control_plane.core.api import validated, validated_query
from control_plane.core.errors import InvalidArgument, NotFound
from control_plane.core.schema import FIELD_PATCHES
from control_plane.openai_api import shapes
from control_plane.openai_api.base import OpenAIApiView, cursor_page, list_body
from control_plane.openai_api.file_apis import file_dataset
from control_plane.openai_api.models import JobMetadata
from control_plane.openai_api.schema import CHECKPOINT_LIST, ERROR, EVENT_LIST, JOB, JOB_LIST, TAG
from control_plane.runs import selectors as run_selectors
from control_plane.runs import services as run_services
from control_plane.runs.models import Run, RunEvent
from control_plane.runs.params import MAX_LEARNING_RATE, MAX_SEED, RunParams

MAX_METADATA_PAIRS = 16
MAX_PAGE = 1000
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@extend_schema_field({"oneOf": [{"type": "string", "enum": ["auto"]}, {"type": "number", "minimum": 0, "exclusiveMinimum": True}]})
class AutoOrNumberField(serializers.Field):
    """"auto" (None: the trainer's default) or a positive number."""

    default_error_messages = {"invalid": 'must be "auto" or a number.', "positive": "must be greater than 0."}

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> float | int | None:
        if data == "auto":
            return None
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        if data <= 0:
            self.fail("positive")
        return data

    def to_representation(self, value):
        return value


class FineTuningHyperparametersInputSerializer(serializers.Serializer):
    """OpenAI's three, plus any of synthtune's own (lora_r, max_length, ...), checked by RunParams."""

    n_epochs = AutoOrNumberField(help_text='"auto" or epochs (up to 100; fractions allowed).')
    batch_size = AutoOrNumberField(help_text='"auto" or rows per batch (whole: RunParams checks).')
    learning_rate_multiplier = AutoOrNumberField(help_text='"auto" or a factor on the trainer\'s 2e-4.')

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if isinstance(data, dict):
            values["synthtune"] = {k: v for k, v in data.items() if k not in self.fields}
        return values


class FineTuningSupervisedInputSerializer(serializers.Serializer):
    hyperparameters = FineTuningHyperparametersInputSerializer(required=False)


class FineTuningMethodInputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=["supervised"], help_text="synthtune trains LoRA adapters with supervised fine-tuning only."
    )
    supervised = FineTuningSupervisedInputSerializer(required=False)


class FineTuningJobCreateInputSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=256, help_text="The base model, as the trainer names it.")
    training_file = serializers.CharField(max_length=200, help_text="A file id from /v1/files.")
    validation_file = serializers.CharField(max_length=200, required=False, allow_null=True, allow_blank=True)
    suffix = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, required=False, allow_null=True)
    hyperparameters = FineTuningHyperparametersInputSerializer(required=False, help_text="Deprecated by OpenAI in favour of method.")
    method = FineTuningMethodInputSerializer(required=False)
    metadata = serializers.DictField(child=serializers.CharField(max_length=512), required=False, allow_null=True)
    integrations = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)

    def validate_metadata(self, value):
        if value and len(value) > MAX_METADATA_PAIRS:
            raise serializers.ValidationError(f"at most {MAX_METADATA_PAIRS} pairs.")
        for key in value or {}:
            if not _METADATA_KEY.match(key):
                raise serializers.ValidationError(f"key {key[:80]!r} must be 1-64 letters, digits, '_', '.' or '-'.")
        return value or {}

    def validate_integrations(self, value):
        if value:
            raise serializers.ValidationError(
                "integrations are not supported; set hyperparameters.report_to (mlflow, tensorboard) through "
                "/api/v1/runs/ instead."
            )
        return value

    def validate(self, attrs):
        top = attrs.get("hyperparameters")
        method = (attrs.get("method") or {}).get("supervised", {}).get("hyperparameters")
        if top and method and top != method:
            raise serializers.ValidationError(
                {"hyperparameters": "give hyperparameters either at the top or in method.supervised, not both."}
            )
        attrs["resolved_hyperparameters"] = method or top or {}
        return attrs


# validate_integrations: none are supported (an empty list or null is no integration).
FIELD_PATCHES["FineTuningJobCreateInputRequest"] = {"integrations": {"maxItems": 0}}


def _hyperparameters(values: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """OpenAI's hyperparameters as synthtune's (unset ones left to the trainer)."""
    out: dict[str, Any] = {}
    if values.get("n_epochs") is not None:
        out["epochs"] = values["n_epochs"]
    if values.get("batch_size") is not None:
        out["batch_size"] = values["batch_size"]
    if (multiplier := values.get("learning_rate_multiplier")) is not None:
        if multiplier * shapes.BASE_LEARNING_RATE > MAX_LEARNING_RATE:
            raise InvalidArgument(
                f"learning_rate_multiplier={multiplier:g} gives a learning rate over {MAX_LEARNING_RATE:g} "
                f"(the base is {shapes.BASE_LEARNING_RATE:g}); at most "
                f"{MAX_LEARNING_RATE / shapes.BASE_LEARNING_RATE:g}.",
                field="hyperparameters.learning_rate_multiplier",
            )
        out["learning_rate"] = multiplier * shapes.BASE_LEARNING_RATE
    if seed is not None:
        out["seed"] = seed
    for name, value in values.get("synthtune", {}).items():
        if name in ("epochs", "learning_rate", "seed"):  # OpenAI's names say these
            raise InvalidArgument(
                f"hyperparameters.{name}: use n_epochs, learning_rate_multiplier or seed here.",
                field=f"hyperparameters.{name}",
            )
        out[name] = value
    return out


def _dataset_of(file_id: str, field: str) -> str:
    try:
        return file_dataset(file_id).name
    except NotFound as exc:
        raise InvalidArgument(f"{field}: {exc.message} Upload it with POST /v1/files first.", field=field) from None


def job_run(job_id: str) -> Run:
    run_id = shapes.unprefixed(job_id, shapes.JOB_PREFIX, "fine-tuning job")
    try:
        return run_selectors.run_get(run_id=run_id)
    except NotFound:
        raise NotFound(f"No such fine-tuning job: {job_id!r}.") from None


def _seq_after(value: str | None, *, run: Run, prefix: str, what: str, field: str) -> int | None:
    """The seq or step an `after` cursor names (ftevent-<run>-<n>, ftckpt-<run>-<n>)."""
    if not value:
        return None
    stem = f"{prefix}{run.run_id}-"
    tail = value[len(stem):] if value.startswith(stem) else ""
    if not tail.isdigit():
        raise InvalidArgument(f"after={value[:120]!r} is not a {what} id of job {shapes.job_id(run)}.", field=field)
    return int(tail)


class FineTuningJobListInputSerializer(serializers.Serializer):
    # An id is taken as given, not trimmed: DRF trims before max_length, so a value over the
    # schema's maxLength would pass once trimmed.
    after = serializers.CharField(
        required=False, max_length=200, trim_whitespace=False, help_text="A job id: the page after it."
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=20)


class FineTuningPageInputSerializer(serializers.Serializer):
    after = serializers.CharField(required=False, max_length=200, trim_whitespace=False)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=20)


class FineTuningCheckpointPageInputSerializer(FineTuningPageInputSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=10)


def _metadata_filter(query_params) -> dict[str, str]:
    """`metadata[key]=value` query parameters, as the SDK sends list(metadata={...})."""
    pairs = {}
    for name, value in query_params.items():
        if name.startswith("metadata[") and name.endswith("]"):
            key = name[len("metadata["):-1]
            if not _METADATA_KEY.match(key):
                raise InvalidArgument(f"metadata key {key[:80]!r} is not a valid key.", field="metadata")
            pairs[key] = value
    return pairs


class JobCollectionApi(OpenAIApiView):
    param_names = {
        "datasets": "training_file",
        "eval_datasets": "validation_file",
        "base_model": "model",
        "base_model_id": "model",
        "adapter_name": "suffix",
        "hyperparameters.epochs": "hyperparameters.n_epochs",
        "hyperparameters.learning_rate": "hyperparameters.learning_rate_multiplier",
        "hyperparameters.seed": "seed",
    }

    @extend_schema(
        operation_id="openai_fine_tuning_jobs_list", tags=[TAG], parameters=[FineTuningJobListInputSerializer],
        responses={200: JOB_LIST, 400: ERROR, 401: ERROR, 404: ERROR},
        description="Newest first. Filter by metadata with metadata[key]=value.",
    )
    def get(self, request):
        query = validated_query(FineTuningJobListInputSerializer, request.query_params)
        runs = run_selectors.run_list().select_related("openai_metadata").prefetch_related("eval_datasets")
        for key, value in _metadata_filter(request.query_params).items():
            runs = runs.filter(**{f"openai_metadata__values__{key}": value})
        after = job_run(query["after"]) if "after" in query else None
        page, has_more = cursor_page(runs, after=after, limit=query["limit"])
        return Response(list_body([shapes.job_object(run) for run in page], has_more=has_more))

    @extend_schema(
        operation_id="openai_fine_tuning_jobs_create", tags=[TAG], request=FineTuningJobCreateInputSerializer,
        responses={200: JOB, 400: ERROR, 401: ERROR, 503: ERROR},
    )
    def post(self, request):
        data = validated(FineTuningJobCreateInputSerializer, request.data)
        params = RunParams(
            datasets=[_dataset_of(data["training_file"], "training_file")],
            eval_datasets=[_dataset_of(data["validation_file"], "validation_file")] if data.get("validation_file") else [],
            base_model=data["model"],
            hyperparameters=_hyperparameters(data["resolved_hyperparameters"], data.get("seed")),
            adapter_name=data.get("suffix") or "",
        )
        run = run_services.run_start(owner=request.user, params=params)
        if data.get("metadata"):
            JobMetadata.objects.create(run=run, values=data["metadata"])
        return Response(shapes.job_object(run_selectors.run_get(run_id=run.run_id)))


class JobDetailApi(OpenAIApiView):
    @extend_schema(operation_id="openai_fine_tuning_jobs_retrieve", tags=[TAG], responses={200: JOB, 401: ERROR, 404: ERROR})
    def get(self, request, job_id: str):
        return Response(shapes.job_object(job_run(job_id)))


class JobCancelApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_fine_tuning_jobs_cancel", tags=[TAG], request=None,
        responses={200: JOB, 400: ERROR, 401: ERROR, 404: ERROR, 503: ERROR},
        description="A queued job stops at once, a running one within a step; the status follows.",
    )
    def post(self, request, job_id: str):
        run = run_services.run_cancel(run=job_run(job_id))
        return Response(shapes.job_object(run_selectors.run_get(run_id=run.run_id)))


class JobEventsApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_fine_tuning_jobs_events", tags=[TAG], parameters=[FineTuningPageInputSerializer],
        responses={200: EVENT_LIST, 400: ERROR, 401: ERROR, 404: ERROR},
        description="Newest first; `after` an event id gives the older ones.",
    )
    def get(self, request, job_id: str):
        run = job_run(job_id)
        query = validated_query(FineTuningPageInputSerializer, request.query_params)
        before = _seq_after(query.get("after"), run=run, prefix=shapes.EVENT_PREFIX, what="event", field="after")
        events, has_more = run_selectors.run_event_list_newest_first(run=run, before_seq=before, limit=query["limit"])
        for event in events:
            event.run = run  # event ids name the run
        return Response(list_body([shapes.event_object(e) for e in events], has_more=has_more))


class JobCheckpointsApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_fine_tuning_jobs_checkpoints", tags=[TAG], parameters=[FineTuningCheckpointPageInputSerializer],
        responses={200: CHECKPOINT_LIST, 400: ERROR, 401: ERROR, 404: ERROR},
        description="The run's evals, newest first. Only the exported one (fine_tuned_model) is servable.",
    )
    def get(self, request, job_id: str):
        run = job_run(job_id)
        query = validated_query(FineTuningCheckpointPageInputSerializer, request.query_params)
        after_step = _seq_after(query.get("after"), run=run, prefix=shapes.CHECKPOINT_PREFIX, what="checkpoint",
                                field="after")
        evals = run_selectors.run_event_list(run=run, types=[RunEvent.Type.EVAL])
        steps = run_selectors.run_event_list(run=run, types=[RunEvent.Type.STEP])
        newest_first = sorted(evals, key=lambda e: e.payload["step"], reverse=True)
        if after_step is not None:
            newest_first = [e for e in newest_first if e.payload["step"] < after_step]
        page = newest_first[: query["limit"]]
        exported, losses = _exported_step(run, evals), _losses(steps)
        return Response(
            list_body(
                [
                    shapes.checkpoint_object(e, run=run, train_loss=_loss_at(losses, e.payload["step"]),
                                             exported_step=exported)
                    for e in page
                ],
                has_more=len(newest_first) > len(page),
                ids=True,
            )
        )


def _losses(steps: list[RunEvent]) -> tuple[list[int], list[float]]:
    """(steps, losses) of the step events, in step order, for _loss_at's search."""
    ordered = sorted((e.payload["step"], e.payload["loss"]) for e in steps)
    return [step for step, _ in ordered], [loss for _, loss in ordered]


def _loss_at(losses: tuple[list[int], list[float]], step: int) -> float | None:
    """The training loss logged at or last before `step`."""
    at = bisect.bisect_right(losses[0], step)
    return losses[1][at - 1] if at else None


def _exported_step(run: Run, evals: list[RunEvent]) -> int | None:
    """The eval whose weights were exported: the best one (the default), else the last step's."""
    if run.config.get("hyperparameters", {}).get("training", {}).get("export_best", True):
        best = [e.payload["step"] for e in evals if e.payload.get("is_best")]
        return best[-1] if best else None
    return run.step
