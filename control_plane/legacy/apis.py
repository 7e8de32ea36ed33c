"""The old Flask app's routes, with its paths, methods, request fields and answers.

Each view parses the old fields, calls the services and selectors /api/v1 calls (there is no
second implementation), and answers in the old envelopes: {"status": "success", ...} or
{"status": "error", "message"} with 400 for bad input and 502 when something further on failed
(translate.LEGACY_HTTP_STATUS). Auth as /api/v1 (token or session), unless
SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS opens them to old clients. Tokens for endpoints and vLLM are
passed on and never stored or logged. In the OpenAPI schema under the tag "legacy", as the old
clients call them (JSON bodies) and as they answer (control_plane.legacy.schema); the README maps
each to /api/v1.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from secrets import token_hex

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from control_plane.core.api import ApiView, IgnoreClientContentNegotiation, validated
from control_plane.core.errors import InvalidArgument, SynthtuneError, UpstreamError
from control_plane.core.schema import NOT_BLANK
from control_plane.datasets import generation as generation_limits
from control_plane.datasets import selectors as dataset_selectors
from control_plane.datasets import services as dataset_services
from control_plane.datasets import storage
from control_plane.datasets.generation import GenerationParams
from control_plane.datasets.models import Dataset, GenerationJob
from control_plane.deployments import proxy
from control_plane.deployments import services as deployment_services
from control_plane.deployments.apis import SamplingSerializer, TargetField
from control_plane.legacy import schema as legacy_schema
from control_plane.legacy import translate
from control_plane.runs import selectors as run_selectors
from control_plane.runs import services as run_services
from control_plane.runs.params import DEFAULT_BASE_MODEL, RunParams
from synthtune.logs import redact

logger = logging.getLogger(__name__)

# The old app's defaults.
DEFAULT_PROMPT_TEMPLATE = "Generate a useful instruction-response pair."
# /generate_data answers when the dataset is written, as the old app did; past this the job goes
# on (its rows are kept) and the answer says where to follow it.
GENERATE_WAIT_S = 900.0
# A UI event's payload is logged up to this size (as JSON); a bigger one is logged as its size only.
EVENT_PAYLOAD_MAX_CHARS = 16_384


class LegacyApi(ApiView):
    content_negotiation_class = IgnoreClientContentNegotiation  # old clients send any Accept
    # The field a typed error names (synthtune's) -> the old request's name for it.
    field_names: dict[str, str] = {}

    def get_permissions(self):
        if translate.allow_anonymous():
            return [AllowAny()]
        return super().get_permissions()

    def get_authenticators(self):
        # Open to anyone, the routes ignore sessions: a session would grant nothing an anonymous
        # caller hasn't, only DRF's CSRF check, which old pages' JavaScript (no CSRF token) fails.
        # So a forged cross-site call with an admin's cookie is just an anonymous call. Tokens
        # (headers, which no other site can make a browser send) are still recognised.
        authenticators = super().get_authenticators()
        if translate.allow_anonymous():
            return [auth for auth in authenticators if not isinstance(auth, SessionAuthentication)]
        return authenticators

    def get_exception_handler(self):
        return translate.legacy_exception_handler


class OldBodySerializer(serializers.Serializer):
    """The old app read `data.get(x) or default`: null is as good as absent (so every field is
    nullable in the schema; a null never reaches a field)."""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.allow_null = True
        return fields

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"body": ["The request body must be a JSON object."]})
        return super().to_internal_value({key: value for key, value in data.items() if value is not None})


def _text(*, max_length: int = 2048, default: str = "", secret: bool = False) -> serializers.CharField:
    return serializers.CharField(
        required=False, allow_blank=True, default=default, max_length=max_length, write_only=secret
    )


# --- data generation --------------------------------------------------------------------------


@extend_schema_serializer(component_name="LegacyGenerateData")
class GenerateDataInputSerializer(OldBodySerializer):
    base_url = _text()
    model = _text(max_length=256)
    bearer_token = _text(max_length=8192, secret=True)
    # The ranges /api/v1/generation-jobs/ takes (the old app had none; past them it failed further on).
    num_samples = serializers.IntegerField(default=5, min_value=1, max_value=generation_limits.MAX_ROWS)
    prompt_template = _text(max_length=generation_limits.MAX_TEXT)
    skip_tls_verify = serializers.BooleanField(default=False)
    request_timeout_sec = serializers.FloatField(
        default=20.0, min_value=0.1, max_value=generation_limits.MAX_REQUEST_TIMEOUT_S
    )


class GenerateDataApi(LegacyApi):
    field_names = {"num_rows": "num_samples", "request_timeout_s": "request_timeout_sec", "token": "bearer_token"}

    @extend_schema(
        tags=[legacy_schema.TAG],
        request=GenerateDataInputSerializer,
        responses={200: legacy_schema.ok(legacy_schema.GENERATE_DATA, "The dataset is written."), 400: legacy_schema.BAD_INPUT,
                   502: legacy_schema.UPSTREAM, 504: legacy_schema.error("Still running after the wait; it goes on.")},
        description="Generates a dataset (every instruction the prompt template) and answers once it is written.",
    )
    def post(self, request):
        data = validated(GenerateDataInputSerializer, request.data)
        for field, message in (
            ("base_url", "Base URL is required"),
            ("model", "Model name is required"),
            ("bearer_token", "Bearer token is required"),
        ):
            if not data[field]:
                raise InvalidArgument(message, field=field)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        params = GenerationParams(
            name=f"synthetic_{stamp}_{token_hex(3)}",
            base_url=data["base_url"],
            model=data["model"],
            mode="fixed",  # the old app: every instruction is the prompt template
            num_rows=data["num_samples"],
            prompt_template=data["prompt_template"] or DEFAULT_PROMPT_TEMPLATE,
            skip_tls_verify=data["skip_tls_verify"],
            request_timeout_s=data["request_timeout_sec"],
        )
        job = dataset_services.dataset_generate(
            owner=translate.owner_of(request), params=params, token=data["bearer_token"]
        )
        finished = translate.generation_finished(job_id=job.job_id, wait_s=GENERATE_WAIT_S)
        if finished is None:
            return translate.error_response(
                f"Generation job {job.job_id} is still running after {GENERATE_WAIT_S:g}s; it goes on, "
                f"with its rows kept: follow it at /api/v1/generation-jobs/{job.job_id}/.",
                504,
            )
        if finished.state != GenerationJob.State.SUCCEEDED:
            raise UpstreamError("ABORTED", f"Generation {finished.state}: {finished.error or 'no reason given'}")
        if finished.dataset.status != Dataset.Status.READY:
            raise UpstreamError("DATA_LOSS", finished.dataset.error or "The dataset was not written.")
        return Response({"status": "success", "meta": {**translate.generation_meta(finished), "model": params.model}})


class ListDatasetsApi(LegacyApi):
    @extend_schema(
        tags=[legacy_schema.TAG],
        responses={200: legacy_schema.ok(legacy_schema.LIST_DATASETS, "Ready datasets as files, by name.")},
        description="The ready datasets, as the old app listed its JSONL files.",
    )
    def get(self, request):
        ready = dataset_selectors.dataset_list(status=Dataset.Status.READY)
        files = [
            {"name": translate.dataset_file_name(d), "size_bytes": d.size_bytes, "num_rows": d.rows} for d in ready
        ]
        return Response({"status": "success", "files": sorted(files, key=lambda f: f["name"])})


# --- fine-tuning ------------------------------------------------------------------------------


@extend_schema_serializer(component_name="LegacyFinetune")
class FinetuneInputSerializer(OldBodySerializer):
    selected_files = serializers.JSONField(required=False, default=list)
    base_model_id = _text(max_length=256)
    num_epochs = serializers.FloatField(default=1)
    learning_rate = serializers.FloatField(default=2e-4)
    per_device_train_batch_size = serializers.IntegerField(default=2)
    gradient_accumulation_steps = serializers.IntegerField(default=2)
    max_seq_len = serializers.IntegerField(default=512)


class FinetuneApi(LegacyApi):
    field_names = {
        "datasets": "selected_files",
        "base_model": "base_model_id",
        "hyperparameters.epochs": "num_epochs",
        "hyperparameters.learning_rate": "learning_rate",
        "hyperparameters.batch_size": "per_device_train_batch_size",
        "hyperparameters.gradient_accumulation_steps": "gradient_accumulation_steps",
        "hyperparameters.max_length": "max_seq_len",
    }

    @extend_schema(
        tags=[legacy_schema.TAG],
        request=FinetuneInputSerializer,
        responses={200: legacy_schema.ok(legacy_schema.FINETUNE, "A run started; job_id is its run id."), 400: legacy_schema.BAD_INPUT,
                   502: legacy_schema.UPSTREAM},
        description="Starts a run on the selected files (POST /api/v1/runs/ under the old names).",
    )
    def post(self, request):
        data = validated(FinetuneInputSerializer, request.data)
        selected = data["selected_files"]
        if not isinstance(selected, list) or not selected:
            raise InvalidArgument("selected_files must be a non-empty list", field="selected_files")
        params = RunParams(
            datasets=translate.training_dataset_names(selected),
            base_model=data["base_model_id"] or DEFAULT_BASE_MODEL,
            hyperparameters={
                "epochs": data["num_epochs"],
                "learning_rate": data["learning_rate"],
                "batch_size": data["per_device_train_batch_size"],
                "gradient_accumulation_steps": data["gradient_accumulation_steps"],
                "max_length": data["max_seq_len"],
            },
        )
        run = run_services.run_start(owner=translate.owner_of(request), params=params)
        return Response({"status": "started", "job_id": run.run_id})


class FinetuneStatusApi(LegacyApi):
    @extend_schema(
        tags=[legacy_schema.TAG],
        parameters=[OpenApiParameter("job_id", str, required=True, pattern=NOT_BLANK, description="A run id.")],
        responses={200: legacy_schema.ok(legacy_schema.FINETUNE_STATUS, "The run's status, or only status not_found."),
                   400: legacy_schema.BAD_INPUT},
        description="A run's status in the old app's words; an unknown job is 200 {\"status\": \"not_found\"}.",
    )
    def get(self, request):
        job_id = request.query_params.get("job_id", "").strip()
        if not job_id:
            raise InvalidArgument("job_id query parameter is required", field="job_id")
        if "\x00" in job_id:  # as DRF refuses it in any field (and PostgreSQL in any text)
            raise InvalidArgument("job_id must not contain a NUL character", field="job_id")
        run = translate.run_or_none(job_id)
        if run is None:
            return Response({"status": "not_found"})  # as the old app: 200
        return Response(translate.run_status(run))


class ListExportedAdaptersApi(LegacyApi):
    @extend_schema(
        tags=[legacy_schema.TAG],
        responses={200: legacy_schema.ok(legacy_schema.LIST_EXPORTED_ADAPTERS, "Exported adapters, by name.")},
        description="The exported adapters with their folders.",
    )
    def get(self, request):
        adapters = sorted(run_selectors.adapter_list(), key=lambda adapter: adapter.name)
        items = [{"name": a.name, "path": str(storage.absolute(a.path))} for a in adapters]
        return Response({"status": "success", "adapters": items})


# --- serving ----------------------------------------------------------------------------------


@extend_schema_serializer(component_name="LegacyHotloadAdapter")
class HotloadAdapterInputSerializer(OldBodySerializer):
    vllm_url = TargetField(required=False, allow_blank=True, default="")
    token = _text(max_length=4096, secret=True)
    exported_adapter = _text(max_length=256)
    adapter_name = _text(max_length=256)


class HotloadAdapterApi(LegacyApi):
    field_names = {"adapter": "exported_adapter", "targets": "vllm_url"}

    @extend_schema(
        tags=[legacy_schema.TAG],
        request=HotloadAdapterInputSerializer,
        responses={200: legacy_schema.ok(legacy_schema.HOTLOAD_ADAPTER, "Loaded; adapter_name is the served name."),
                   400: legacy_schema.BAD_INPUT, 502: legacy_schema.UPSTREAM},
        description="Loads an exported adapter into vLLM (its newest version for a stem).",
    )
    def post(self, request):
        data = validated(HotloadAdapterInputSerializer, request.data)
        wanted = data["exported_adapter"] or translate.default_adapter_name()
        if not data["vllm_url"] or not wanted:
            raise InvalidArgument("vllm_url and exported_adapter are required", field="exported_adapter")
        adapter = translate.exported_adapter(wanted, resolve=deployment_services.adapter_for_serving)
        stem = re.sub(r"-v\d+$", "", adapter.name)  # the old stable name; /compare's ft_model takes it too
        if data["adapter_name"] not in ("", wanted, adapter.name, stem):
            # vLLM serves an adapter under its own versioned name (DESIGN.md §6), so a compare names it.
            raise InvalidArgument(
                f"adapter_name: synthtune serves {adapter.name!r} under that name, not {data['adapter_name']!r}; "
                f"leave adapter_name empty (or {stem!r}, or equal to exported_adapter) and use the adapter_name "
                "answered."
            )
        outcome = deployment_services.deployment_load(
            adapter_name=adapter.name, targets=[data["vllm_url"]], token=data["token"], owner=translate.owner_of(request)
        )
        lora_path = translate.adapter_root_on(
            target=data["vllm_url"], served_name=outcome.served_name, token=data["token"]
        )
        return Response(
            {
                "status": "success",
                "response": {"ok": True, "replicas": [replica.as_dict() for replica in outcome.replicas]},
                "adapter_name": outcome.served_name,
                "lora_path": lora_path,
            }
        )


@extend_schema_serializer(component_name="LegacyUnloadAdapter")
class UnloadAdapterInputSerializer(OldBodySerializer):
    vllm_url = TargetField(required=False, allow_blank=True, default="")
    token = _text(max_length=4096, secret=True)
    adapter_name = _text(max_length=256)


class UnloadAdapterApi(LegacyApi):
    @extend_schema(
        tags=[legacy_schema.TAG],
        request=UnloadAdapterInputSerializer,
        responses={200: legacy_schema.ok(legacy_schema.UNLOAD_ADAPTER, "Unloaded."), 400: legacy_schema.BAD_INPUT,
                   502: legacy_schema.UPSTREAM},
        description="Unloads an adapter loaded through synthtune from vLLM.",
    )
    def post(self, request):
        data = validated(UnloadAdapterInputSerializer, request.data)
        name = data["adapter_name"] or translate.default_adapter_name()
        if not data["vllm_url"] or not name:
            raise InvalidArgument("vllm_url and adapter_name are required", field="adapter_name")
        try:
            deployment_services.deployment_reconcile()  # what a restarted vLLM lost is not "loaded"
        except SynthtuneError:
            pass  # the unload itself will say what is wrong
        deployment = translate.loaded_deployment(target=data["vllm_url"], name=name)
        deployment = deployment_services.deployment_unload(deployment=deployment, token=data["token"])
        return Response(
            {
                "status": "success",
                "response": {"ok": True, "target": deployment.target, "state": deployment.state},
                "adapter_name": deployment.served_name,
            }
        )


@extend_schema_serializer(component_name="LegacyCompare")
class CompareInputSerializer(OldBodySerializer):
    prompt = _text(max_length=16_000)
    base_url = TargetField(required=False, allow_blank=True, default="")
    base_model = _text(max_length=256)
    ft_url = TargetField(required=False, allow_blank=True, default="")
    ft_model = _text(max_length=256)
    token = _text(max_length=4096, secret=True)
    base_token = _text(max_length=4096, secret=True)
    ft_token = _text(max_length=4096, secret=True)
    max_new_tokens = serializers.IntegerField(default=256)
    temperature = serializers.FloatField(default=0.7)
    top_p = serializers.FloatField(default=0.95)


_SAMPLING_NAMES = {"max_tokens": "max_new_tokens", "temperature": "temperature", "top_p": "top_p"}


def _sampling(data: dict) -> dict:
    """The old sampling fields, checked as /api/v1's compare checks them, errors named the old way."""
    values = {new: data[old] for new, old in _SAMPLING_NAMES.items()}
    serializer = SamplingSerializer(data=values)
    if not serializer.is_valid():
        raise serializers.ValidationError({_SAMPLING_NAMES[k]: v for k, v in serializer.errors.items()})
    return dict(serializer.validated_data)


class CompareApi(LegacyApi):
    field_names = {
        "adapter": "ft_model",
        "served_name": "ft_model",
        "target": "ft_url",
        "targets": "ft_url",
        **{f"sampling.{new}": old for new, old in _SAMPLING_NAMES.items()},
    }

    @extend_schema(
        tags=[legacy_schema.TAG],
        request=CompareInputSerializer,
        responses={200: legacy_schema.ok(legacy_schema.COMPARE, "Both answers."), 400: legacy_schema.BAD_INPUT,
                   502: legacy_schema.UPSTREAM},
        description="One prompt through the base model and the adapter loaded on it, on one vLLM.",
    )
    def post(self, request):
        data = validated(CompareInputSerializer, request.data)
        if not data["prompt"]:
            raise InvalidArgument("prompt is required", field="prompt")
        ft_url = data["ft_url"] or data["base_url"]
        ft_model = data["ft_model"] or translate.default_adapter_name()
        if not (data["base_url"] and data["base_model"] and ft_url and ft_model):
            raise InvalidArgument("base_url/base_model and ft_url/ft_model are required", field="ft_model")
        if proxy.normalize_target(ft_url) != proxy.normalize_target(data["base_url"]):
            raise InvalidArgument(
                "base_url and ft_url must be the same vLLM: synthtune compares an adapter with the base model "
                "it is loaded on, on that server.",
                field="ft_url",
            )
        base_token, ft_token = data["base_token"] or data["token"], data["ft_token"] or data["token"]
        if base_token != ft_token and data["base_token"] and data["ft_token"]:
            raise InvalidArgument("base_token and ft_token must be the same: one vLLM, one token.", field="ft_token")
        token = ft_token or base_token
        sampling = _sampling(data)
        served = translate.served_adapter(target=ft_url, name=ft_model, token=token)
        if served.parent != data["base_model"]:
            raise InvalidArgument(
                f"base_model {data['base_model']!r} is not the base of {served.id!r} on vLLM at {ft_url}: "
                f"it is loaded on {served.parent!r}, and synthtune compares an adapter with its own base.",
                field="base_model",
            )
        comparison = deployment_services.comparison_run_one(
            owner=translate.owner_of(request),
            adapter_name=served.adapter_name,
            prompt=data["prompt"],
            sampling=sampling,
            served_name=served.id,
            target=ft_url,
            token=token,
        )
        return Response(
            {
                "status": "success",
                "base": comparison.result["base"]["text"],
                "finetuned": comparison.result["adapter"]["text"],
                # The one deliberate difference: the adapter's recorded format, not always ### Instruction.
                "prompt_format": comparison.prompt_format,
            }
        )


# --- UI events --------------------------------------------------------------------------------


EVENT_NAME_MAX_CHARS = 200


class EventLogInputSerializer(OldBodySerializer):
    event = _text(max_length=100_000)  # cut to EVENT_NAME_MAX_CHARS for the log, never refused
    payload = serializers.JSONField(required=False, default=None)


class EventLogApi(LegacyApi):
    @extend_schema(
        tags=[legacy_schema.TAG],
        request={"application/json": legacy_schema.ANY_BODY},
        responses={200: legacy_schema.ok(legacy_schema.EVENT_LOG, "Logged (any body).")},
        description="Logs a UI event; any body, or none, is {\"status\": \"ok\"}.",
    )
    def post(self, request):
        # The old app read this body with get_json(silent=True) (app.py:73): a body that isn't
        # JSON, or none, was an unknown event answered {"status": "ok"}, not a 400.
        # A JSON value that is not an object is no event either (the old app failed on a truthy
        # one, answered ok to a falsy one); README: ok to any body.
        try:
            body = request.data
        except ParseError:
            body = {}
        data = validated(EventLogInputSerializer, body if isinstance(body, Mapping) else {})
        payload = redact(data["payload"])  # secret-looking keys, Bearer and token= patterns
        size = len(json.dumps(payload))
        if size > EVENT_PAYLOAD_MAX_CHARS:
            payload = {"omitted": f"{size} characters of JSON, more than {EVENT_PAYLOAD_MAX_CHARS}"}
        logger.info(
            "ui event",
            extra={
                "event": f"ui:{data['event'][:EVENT_NAME_MAX_CHARS] or 'unknown'}",
                "path": request.path,
                "user_agent": request.headers.get("User-Agent", "")[:300],
                "payload": payload,
            },
        )
        return Response({"status": "ok"})
