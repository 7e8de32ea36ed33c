"""REST API for serving: load and unload adapters into vLLM (through the serving proxy), the
deployments (reconciled with what vLLM serves), what each vLLM serves, and base-vs-adapter
comparisons. Thin views over services and selectors, each operation with its own serializers.

vLLM tokens: in the request body (POST) or the X-Vllm-Token header (GET); passed on, never stored.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from control_plane.core.api import (
    ApiView,
    IgnoreClientContentNegotiation,
    paginated_response,
    validated,
    validated_query,
)
from control_plane.core.errors import InvalidArgument, SynthtuneError, error_body
from control_plane.core.schema import FIELD_PATCHES, NAME_SCHEMA, VLLM_URL
from control_plane.core.sse import sse_message, sse_response
from control_plane.core.validators import top_p_above_zero
from control_plane.deployments import selectors, services
from control_plane.deployments.models import Comparison, Deployment

ERROR = OpenApiResponse(description='Error body: {"message", "code", "extra"}')
TOKEN_HEADER = "X-Vllm-Token"
MAX_TARGETS = 16
MAX_PROMPT_CHARS = 16_000
BATCH_MAX_LIMIT = 200
BATCH_DEFAULT_LIMIT = 20
JUDGE_MODES = ("pairwise", "single", "both")
_VISIBLE_ASCII = re.compile(r"[!-~]*")


# --- serializers -------------------------------------------------------------------


class TargetField(serializers.CharField):
    """A vLLM base URL: http(s)://host[:port][/path]. Kubernetes service names have no dot,
    which Django's URL validator would refuse, hence this one."""

    schema_pattern = VLLM_URL  # the same rule, in the OpenAPI schema

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 512)
        if kwargs.get("allow_blank"):
            self.schema_pattern = f"^\\s+$|{VLLM_URL}"  # never "": see core.schema.ANY_TEXT
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data).strip()
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise serializers.ValidationError(
                f"{value[:100]!r} is not a vLLM base URL such as http://127.0.0.1:8000."
            )
        return value.rstrip("/").removesuffix("/v1").rstrip("/")


class TokenField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.update(
            required=False,
            allow_blank=True,
            default="",
            max_length=4096,
            write_only=True,
            trim_whitespace=True,
            style={"input_type": "password"},
            help_text="vLLM's API key, if it has one: passed on, never stored or logged.",
        )
        super().__init__(**kwargs)


class LoadInputSerializer(serializers.Serializer):
    targets = serializers.ListField(
        child=TargetField(),
        required=False,
        default=list,
        max_length=MAX_TARGETS,
        help_text="vLLM base URLs; empty: the proxy's configured replicas.",
    )
    token = TokenField()


class UnloadInputSerializer(serializers.Serializer):
    token = TokenField()


class DeploymentOutputSerializer(serializers.ModelSerializer):
    adapter = serializers.CharField(source="adapter.name", read_only=True)
    owner = serializers.CharField(source="owner.username", default=None, read_only=True)

    class Meta:
        model = Deployment
        fields = (
            "id",
            "adapter",
            "target",
            "served_name",
            "state",
            "error",
            "owner",
            "loaded_at",
            "unloaded_at",
            "checked_at",
            "created_at",
            "updated_at",
        )


class ReplicaOutputSerializer(serializers.Serializer):
    target = serializers.CharField()
    ok = serializers.BooleanField()
    served_name = serializers.CharField()
    code = serializers.CharField(help_text="A google.rpc code name when not ok.")
    message = serializers.CharField()
    already_loaded = serializers.BooleanField()


class LoadOutputSerializer(serializers.Serializer):
    adapter = serializers.CharField()
    served_name = serializers.CharField()
    deployments = DeploymentOutputSerializer(many=True)
    replicas = ReplicaOutputSerializer(many=True)


class AdapterUnloadOutputSerializer(serializers.Serializer):
    adapter = serializers.CharField()
    deployments = DeploymentOutputSerializer(many=True)


class DeploymentFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Deployment.State.choices, required=False)
    adapter = serializers.CharField(required=False, help_text="Adapter name.")
    target = serializers.CharField(required=False, help_text="vLLM base URL.")
    reconcile = serializers.BooleanField(
        required=False, default=True, help_text="Check against vLLM first (default); false: as stored."
    )


class ReconcileOutputSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="False: the proxy could not be asked; states are as stored.")
    error = serializers.CharField(allow_blank=True)
    checked_at = serializers.DateTimeField(allow_null=True)


class DeploymentListOutputSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DeploymentOutputSerializer(many=True)
    reconcile = ReconcileOutputSerializer()


class DeploymentDetailOutputSerializer(DeploymentOutputSerializer):
    # Set on the instance by the view: how the check against vLLM went.
    reconcile = ReconcileOutputSerializer(read_only=True)

    class Meta(DeploymentOutputSerializer.Meta):
        fields = (*DeploymentOutputSerializer.Meta.fields, "reconcile")


class ServedModelsFilterSerializer(serializers.Serializer):
    target = serializers.ListField(
        child=TargetField(),
        required=False,
        default=list,
        max_length=MAX_TARGETS,
        help_text="vLLM base URLs (repeat the parameter); none: the proxy's targets.",
    )


class ServedModelOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The name to send as `model`.")
    root = serializers.CharField(help_text="The model path (an adapter's path as vLLM sees it).")
    parent = serializers.CharField(help_text="An adapter's base model; empty for a base model.")
    adapter_name = serializers.CharField(help_text="The adapters/ folder, when the root is ours.")


class TargetModelsOutputSerializer(serializers.Serializer):
    target = serializers.CharField()
    reachable = serializers.BooleanField()
    error = serializers.CharField()
    models = ServedModelOutputSerializer(many=True)


class ServedModelsOutputSerializer(serializers.Serializer):
    targets = TargetModelsOutputSerializer(many=True)


class SamplingSerializer(serializers.Serializer):
    temperature = serializers.FloatField(
        min_value=0, max_value=2, required=False, help_text="Default 0 (greedy)."
    )
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False, validators=[top_p_above_zero])
    max_tokens = serializers.IntegerField(min_value=1, max_value=4096, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)


class _ServingTargetSerializer(serializers.Serializer):
    adapter = serializers.CharField(max_length=256, help_text="The adapter's name (its adapters/ folder).")
    served_name = serializers.CharField(
        max_length=256,
        required=False,
        allow_blank=True,
        default="",
        help_text="A loaded version's served name; empty: the newest loaded one.",
    )
    target = TargetField(
        required=False,
        allow_blank=True,
        default="",
        help_text="vLLM base URL; empty: where the adapter is loaded, else the proxy's default.",
    )
    token = TokenField()
    sampling = SamplingSerializer(required=False, help_text="The same for both sides.")


class CompareInputSerializer(_ServingTargetSerializer):
    prompt = serializers.CharField(max_length=MAX_PROMPT_CHARS, trim_whitespace=False)
    system_prompt = serializers.CharField(
        max_length=MAX_PROMPT_CHARS, required=False, allow_blank=True, default="", trim_whitespace=False
    )


class GenerationOutputSerializer(serializers.Serializer):
    model = serializers.CharField()
    text = serializers.CharField()
    latency_ms = serializers.FloatField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    finish_reason = serializers.CharField()


class CompareOutputSerializer(serializers.Serializer):
    comparison_id = serializers.IntegerField()
    adapter_name = serializers.CharField()
    served_name = serializers.CharField()
    target = serializers.CharField()
    prompt_format = serializers.CharField(help_text='"chat" or "instruction", from the manifest.')
    base = GenerationOutputSerializer()
    adapter = GenerationOutputSerializer()


class JudgeUrlField(serializers.CharField):
    """The judge's OpenAI-compatible API root: any http(s) URL (it need not be one of ours)."""

    schema_pattern = VLLM_URL  # the same form as a target's

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 2048)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data).strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise serializers.ValidationError(
                f"{value[:100]!r} is not an OpenAI-compatible base URL such as http://127.0.0.1:8000/v1."
            )
        if parts.username or parts.password:
            raise serializers.ValidationError("Put the judge's credentials in judge.token, not in the URL.")
        return value.rstrip("/")


class CompareJudgeInputSerializer(serializers.Serializer):
    base_url = JudgeUrlField(help_text="The judge: an OpenAI-compatible API, e.g. http://host:8000/v1.")
    model = serializers.CharField(max_length=256, help_text="The judge's model name.")
    token = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        write_only=True,
        max_length=8192,
        style={"input_type": "password"},
        help_text="Bearer token for the judge: passed on, never stored or logged. Empty for a judge at the "
        "proxy's own vLLM: its vLLM token is used.",
    )
    mode = serializers.ChoiceField(
        choices=JUDGE_MODES,
        default="pairwise",
        help_text="pairwise: which answer is better, asked in both orders; single: a 1-5 score per side "
        "against the reference; both.",
    )
    rubric = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="What 'better' means, in words the judge reads; default: helpful, correct, following "
        "the instruction.",
    )
    concurrency = serializers.IntegerField(
        min_value=1, max_value=32, required=False, help_text="Judge requests in flight; default 4."
    )
    request_timeout_s = serializers.FloatField(
        min_value=1, max_value=600, required=False, help_text="Per judge request; default 60."
    )
    max_tokens = serializers.IntegerField(
        min_value=8, max_value=4096, required=False, help_text="Per verdict; default 256."
    )


# The adapter a comparison names is a plain name (synthtune.paths.validate_name), for the schema.
# served_name: blank (the newest loaded version) or a name, as the serving proxy checks it.
_SERVED_NAME = {"pattern": f"^\\s+$|{NAME_SCHEMA['pattern']}", "maxLength": NAME_SCHEMA["maxLength"]}
FIELD_PATCHES["CompareInputRequest"] = {"adapter": NAME_SCHEMA, "served_name": _SERVED_NAME}
FIELD_PATCHES["CompareBatchInputRequest"] = {"adapter": NAME_SCHEMA, "served_name": _SERVED_NAME}
FIELD_PATCHES["LoadInputRequest"] = {"targets": {"uniqueItems": True}}


class CompareBatchInputSerializer(_ServingTargetSerializer):
    dataset = serializers.CharField(
        max_length=256,
        required=False,
        allow_blank=True,
        default="",
        help_text="A ready dataset's name; empty: the adapter's held-out rows (its eval split).",
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=BATCH_MAX_LIMIT, default=BATCH_DEFAULT_LIMIT, help_text="Rows to compare."
    )
    judge = CompareJudgeInputSerializer(
        required=False, help_text="An LLM judge: which answer is better per row, and the adapter's win rate."
    )


class PairwiseVerdictOutputSerializer(serializers.Serializer):
    first = serializers.CharField(help_text='The side shown as answer A: "base" or "adapter".')
    winner = serializers.CharField(help_text='"base", "adapter" or "tie"; empty: no verdict (see error).')
    reason = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True, help_text="Why there is no verdict.")


class SingleScoreOutputSerializer(serializers.Serializer):
    score = serializers.IntegerField(allow_null=True, help_text="1 to 5 against the reference; null: none.")
    reason = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)


class RowJudgementOutputSerializer(serializers.Serializer):
    outcome = serializers.CharField(
        help_text='For the adapter: "win", "loss", "tie" or "no_verdict" (empty in single mode).'
    )
    inconsistent = serializers.BooleanField(help_text="The two orders disagreed (counted as a tie).")
    reason = serializers.CharField(allow_blank=True, help_text="Why no_verdict.")
    verdicts = PairwiseVerdictOutputSerializer(many=True, help_text="Base first, then adapter first.")
    base_score = SingleScoreOutputSerializer(allow_null=True)
    adapter_score = SingleScoreOutputSerializer(allow_null=True)


class JudgeSummaryOutputSerializer(serializers.Serializer):
    model = serializers.CharField()
    mode = serializers.CharField()
    wins = serializers.IntegerField()
    ties = serializers.IntegerField()
    losses = serializers.IntegerField()
    no_verdict = serializers.IntegerField(help_text="Rows without a verdict in both orders (never a win).")
    inconsistent = serializers.IntegerField(help_text="Rows whose two orders disagreed (counted as ties).")
    win_rate = serializers.FloatField(help_text="Over the rows with a verdict.")
    tie_rate = serializers.FloatField()
    loss_rate = serializers.FloatField()
    win_rate_low = serializers.FloatField(help_text="Wilson 95% interval of the win rate.")
    win_rate_high = serializers.FloatField()
    base_score_mean = serializers.FloatField(help_text="Single mode: mean 1-5 score.")
    adapter_score_mean = serializers.FloatField()
    base_scored = serializers.IntegerField()
    adapter_scored = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField(help_text="The judge's usage.")
    completion_tokens = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True, help_text="Set when no row got a verdict: why.")


class CompareRowOutputSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    prompt = serializers.CharField()
    reference = serializers.CharField()
    base = GenerationOutputSerializer()
    adapter = GenerationOutputSerializer()
    base_exact = serializers.BooleanField()
    adapter_exact = serializers.BooleanField()
    base_chrf = serializers.FloatField(help_text="chrF against the reference, 0-100.")
    adapter_chrf = serializers.FloatField()
    error = serializers.CharField(
        allow_blank=True, help_text="Set when the row could not be compared (it counts as a miss)."
    )
    judge = RowJudgementOutputSerializer(allow_null=True, required=False, help_text="With a judge.")


class SideSummaryOutputSerializer(serializers.Serializer):
    exact_match_rate = serializers.FloatField()
    chrf = serializers.FloatField()
    latency_p50_ms = serializers.FloatField()
    latency_p95_ms = serializers.FloatField()
    stop_rate = serializers.FloatField(help_text='Share of rows that ended with finish_reason "stop".')


class CompareSummaryOutputSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    failed_rows = serializers.IntegerField(help_text="Rows with an error (included in rows).")
    dataset_path = serializers.CharField(help_text="The rows' file, relative to the data root.")
    prompt_format = serializers.CharField()
    base = SideSummaryOutputSerializer()
    adapter = SideSummaryOutputSerializer()
    judge = JudgeSummaryOutputSerializer(allow_null=True, required=False, help_text="With a judge.")


class CompareBatchOutputSerializer(serializers.Serializer):
    comparison_id = serializers.IntegerField()
    adapter_name = serializers.CharField()
    served_name = serializers.CharField()
    target = serializers.CharField()
    dataset = serializers.CharField(help_text="Empty: the adapter's eval split.")
    rows = CompareRowOutputSerializer(many=True)
    summary = CompareSummaryOutputSerializer()


class ComparisonOutputSerializer(serializers.ModelSerializer):
    adapter = serializers.CharField(source="adapter.name", read_only=True)
    owner = serializers.CharField(source="owner.username", default=None, read_only=True)

    class Meta:
        model = Comparison
        fields = (
            "id",
            "kind",
            "adapter",
            "served_name",
            "target",
            "prompt_format",
            "request",
            "result",
            "summary",
            "owner",
            "created_at",
        )


def _reconcile() -> dict:
    """Reconcile with vLLM; a proxy that can't be asked leaves the stored states (and says so)."""
    try:
        report = services.deployment_reconcile()
    except SynthtuneError as exc:
        return {"ok": False, "error": exc.message, "checked_at": None}
    return {"ok": True, "error": "", "checked_at": report.checked_at}


# --- load and unload -----------------------------------------------------------------------


class AdapterLoadApi(ApiView):
    @extend_schema(
        operation_id="adapters_load",
        request=LoadInputSerializer,
        responses={
            200: LoadOutputSerializer,
            201: LoadOutputSerializer,
            400: ERROR,
            404: ERROR,
            503: ERROR,
        },
        description="Hot-load the adapter into vLLM through the serving proxy (every replica, or "
        "`targets`), under a versioned served name. The proxy checks first: files and manifest, "
        "rank <= vLLM's --max-lora-rank, base model = the served one, runtime LoRA updating on; a "
        "failed check is 400 FAILED_PRECONDITION with the proxy's message. vLLM or the proxy down: "
        "503 naming the URL. An unknown adapter, or one whose export hasn't finished, is 404. A load "
        "that fails writes no deployment; one that loaded on some replicas only records the others "
        "as failed (see `replicas`). 200 when it was already loaded everywhere, else 201.",
    )
    def post(self, request, name: str):
        data = validated(LoadInputSerializer, request.data)
        outcome = services.deployment_load(
            adapter_name=name, targets=data["targets"], token=data["token"], owner=request.user
        )
        body = {
            "adapter": name,
            "served_name": outcome.served_name,
            "deployments": outcome.deployments,
            "replicas": [replica.as_dict() for replica in outcome.replicas],
        }
        fresh = any(replica.ok and not replica.already_loaded for replica in outcome.replicas)
        return Response(
            LoadOutputSerializer(body).data, status=status.HTTP_201_CREATED if fresh else status.HTTP_200_OK
        )


class AdapterUnloadApi(ApiView):
    @extend_schema(
        operation_id="adapters_unload",
        request=UnloadInputSerializer,
        responses={200: AdapterUnloadOutputSerializer, 400: ERROR, 404: ERROR, 503: ERROR},
        description="Unload every loaded deployment of the adapter. 404 when it is not loaded "
        "anywhere (deployments vLLM no longer serves become lost).",
    )
    def post(self, request, name: str):
        data = validated(UnloadInputSerializer, request.data)
        adapter = services.adapter_for_serving(name=name)
        deployments = services.adapter_unload(adapter=adapter, token=data["token"])
        return Response(AdapterUnloadOutputSerializer({"adapter": name, "deployments": deployments}).data)


class DeploymentUnloadApi(ApiView):
    @extend_schema(
        operation_id="deployments_unload",
        request=UnloadInputSerializer,
        responses={200: DeploymentOutputSerializer, 404: ERROR, 503: ERROR},
        description="Unload this deployment from its vLLM. 404 when it isn't loaded: its state "
        "says so, or vLLM doesn't serve it any more (the deployment then becomes lost).",
    )
    def post(self, request, deployment_id: int):
        data = validated(UnloadInputSerializer, request.data)
        deployment = selectors.deployment_get(deployment_id=deployment_id)
        deployment = services.deployment_unload(deployment=deployment, token=data["token"])
        return Response(DeploymentOutputSerializer(deployment).data)


# --- deployments and served models ----------------------------------------------------------


class DeploymentCollectionApi(ApiView):
    @extend_schema(
        operation_id="deployments_list",
        parameters=[DeploymentFilterSerializer],
        responses={200: DeploymentListOutputSerializer},
        description="Deployments, newest first, checked against what each vLLM serves (unless "
        "reconcile=false): one that a restarted vLLM has lost is `lost`, with the reason in `error`. "
        "If the proxy can't be asked, states are as stored and `reconcile.ok` is false.",
    )
    def get(self, request):
        filters = dict(validated_query(DeploymentFilterSerializer, request.query_params))
        reconciled = (
            _reconcile() if filters.pop("reconcile") else {"ok": False, "error": "", "checked_at": None}
        )
        response = paginated_response(
            queryset=selectors.deployment_list(**filters),
            serializer_class=DeploymentOutputSerializer,
            request=request,
            view=self,
        )
        response.data["reconcile"] = ReconcileOutputSerializer(reconciled).data
        return response


class DeploymentDetailApi(ApiView):
    @extend_schema(
        operation_id="deployments_retrieve",
        responses={200: DeploymentDetailOutputSerializer, 404: ERROR},
        description="One deployment, checked against its vLLM first.",
    )
    def get(self, request, deployment_id: int):
        selectors.deployment_get(deployment_id=deployment_id)  # 404 before asking vLLM
        reconciled = _reconcile()
        deployment = selectors.deployment_get(deployment_id=deployment_id)
        deployment.reconcile = reconciled
        return Response(DeploymentDetailOutputSerializer(deployment).data)


class ServedModelsApi(ApiView):
    @extend_schema(
        operation_id="served_models_list",
        parameters=[
            ServedModelsFilterSerializer,
            OpenApiParameter(TOKEN_HEADER, str, OpenApiParameter.HEADER, description="vLLM's API key."),
        ],
        responses={200: ServedModelsOutputSerializer, 400: ERROR, 503: ERROR},
        description="What each vLLM serves right now (its /v1/models): the base model and the "
        "adapters, with the adapters/ folder each maps to. An unreachable vLLM is listed with "
        "reachable=false and the error; 503 only when the proxy itself is down.",
    )
    def get(self, request):
        # No ?target= (the usual call): nothing to validate, and building the serializer (a deep copy
        # of its fields) would be a tenth of the request's own time.
        requested = request.query_params.getlist("target")
        query = validated(ServedModelsFilterSerializer, {"target": requested}) if requested else {"target": []}
        token = request.headers.get(TOKEN_HEADER, "").strip()
        if not _VISIBLE_ASCII.fullmatch(token):  # it goes on as an Authorization header
            raise InvalidArgument(f"{TOKEN_HEADER} must be visible ASCII.", field=TOKEN_HEADER)
        targets = selectors.served_models(targets=query["target"], token=token)
        # Already the documented shape; skipping the output serializer saves a slice of every call.
        return Response({"targets": [t.as_dict() for t in targets]})


# --- comparisons ------------------------------------------------------------------------------


class CompareApi(ApiView):
    @extend_schema(
        operation_id="compare_one",
        request=CompareInputSerializer,
        responses={200: CompareOutputSerializer, 400: ERROR, 404: ERROR, 503: ERROR},
        description="The base model and the adapter on one prompt, side by side: identical sampling "
        "(greedy by default), the prompt format from the adapter's manifest, both called at once. "
        "Each side: text, latency, token counts, finish reason. Recorded as a comparison.",
    )
    def post(self, request):
        data = validated(CompareInputSerializer, request.data)
        comparison = services.comparison_run_one(
            owner=request.user,
            adapter_name=data["adapter"],
            prompt=data["prompt"],
            system_prompt=data["system_prompt"],
            sampling=dict(data.get("sampling") or {}),
            served_name=data["served_name"],
            target=data["target"],
            token=data["token"],
        )
        body = {
            "comparison_id": comparison.pk,
            "adapter_name": comparison.adapter.name,
            "served_name": comparison.served_name,
            "target": comparison.target,
            "prompt_format": comparison.prompt_format,
            **comparison.result,
        }
        return Response(body)  # the CompareOutputSerializer shape, built directly (hot path)


def _wants_stream(request) -> bool:
    return "text/event-stream" in request.headers.get("Accept", "")


class CompareBatchApi(ApiView):
    content_negotiation_class = IgnoreClientContentNegotiation

    @extend_schema(
        operation_id="compare_batch",
        request=CompareBatchInputSerializer,
        responses={
            200: CompareBatchOutputSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description="With `Accept: text/event-stream`: `event: row` per row as it is compared, "
                "then `event: summary`, then `event: comparison` ({id}); a failure midway is "
                "`event: error` with the one error body. `id:` counts the events.",
            ),
            400: ERROR,
            404: ERROR,
            503: ERROR,
        },
        description=f"Base vs adapter over held-out rows (the adapter's eval split, or a ready "
        f"dataset), at most {BATCH_MAX_LIMIT} rows: per row both outputs, exact match and chrF against "
        "the reference; the summary per side has the exact-match rate, chrF and latency p50/p95. "
        "With `judge`, an LLM judge (any OpenAI-compatible endpoint) says per row which answer is better, "
        "asked in both orders (a split verdict is a tie), and the summary has the adapter's win/tie/loss "
        "rates with a Wilson 95% interval; a judge fault is that row's no_verdict with the reason, never a "
        "win. The judge down at the start is 503; its token is never stored. "
        "JSON (all at once, when the batch is done) or, with `Accept: text/event-stream`, streamed "
        "row by row. Errors found before the first row are plain error answers either way. "
        "Recorded as a comparison.",
    )
    def post(self, request):
        data = validated(CompareBatchInputSerializer, request.data)
        batch = services.comparison_start_batch(
            owner=request.user,
            adapter_name=data["adapter"],
            dataset=data["dataset"],
            limit=data["limit"],
            sampling=dict(data.get("sampling") or {}),
            served_name=data["served_name"],
            target=data["target"],
            token=data["token"],
            judge=dict(data["judge"]) if data.get("judge") else None,
        )
        events = batch.events()
        first = next(events)  # the proxy's up-front errors (not loaded, no eval split...) raise here
        if _wants_stream(request):
            return sse_response(_sse(first, events))
        for _ in events:
            pass
        body = {
            "comparison_id": batch.comparison.pk,
            "adapter_name": batch.adapter.name,
            "served_name": batch.served_name,
            "target": batch.target,
            "dataset": batch.dataset,
            "rows": batch.rows,
            "summary": batch.summary,
        }
        return Response(CompareBatchOutputSerializer(body).data)


def _sse(first, events):
    seq = 1
    yield sse_message(data=first[1], seq=seq, event=first[0])
    try:
        for kind, payload in events:
            seq += 1
            yield sse_message(data=payload, seq=seq, event=kind)
    except SynthtuneError as exc:
        yield sse_message(data=error_body(message=exc.message, code=exc.code, extra=exc.extra), event="error")


class ComparisonDetailApi(ApiView):
    @extend_schema(
        operation_id="comparisons_retrieve", responses={200: ComparisonOutputSerializer, 404: ERROR}
    )
    def get(self, request, comparison_id: int):
        return Response(
            ComparisonOutputSerializer(selectors.comparison_get(comparison_id=comparison_id)).data
        )


class ComparisonFilterSerializer(serializers.Serializer):
    adapter = serializers.CharField(required=False, help_text="Adapter name.")
    kind = serializers.ChoiceField(choices=Comparison.Kind.choices, required=False)


class ComparisonCollectionApi(ApiView):
    @extend_schema(
        operation_id="comparisons_list",
        parameters=[ComparisonFilterSerializer],
        responses={200: ComparisonOutputSerializer(many=True)},
    )
    def get(self, request):
        filters = validated_query(ComparisonFilterSerializer, request.query_params)
        return paginated_response(
            queryset=selectors.comparison_list(**filters),
            serializer_class=ComparisonOutputSerializer,
            request=request,
            view=self,
        )
