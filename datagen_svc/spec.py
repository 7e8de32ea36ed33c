"""What a generation job asks for, and the checks that make it safe to run.

`GenerationSpec` is the domain form of StartGenerationRequest. `validate_spec`
fills documented defaults and raises InvalidArgument naming the exact field
(proto paths such as "endpoint.base_url") with a message a person can act on.
The token lives only in `Endpoint.token`; `public_params` never includes it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from datagen_svc.filter_params import check_int
from synthtune.errors import InvalidArgument
from synthtune.paths import validate_name

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 5
DEFAULT_CONCURRENCY = 8
MAX_TIMEOUT_S = 600.0
MAX_RETRIES = 20
MAX_TOKENS = 131_072
MAX_TEXT_CHARS = 20_000
MAX_SEEDS = 200
MAX_RPM = 1_000_000.0
MAX_EVAL_SETS = 20


class Mode(StrEnum):
    FIXED = "fixed"
    SELF_INSTRUCT = "self_instruct"
    FROM_INSTRUCTIONS = "from_instructions"
    EVOL_INSTRUCT = "evol_instruct"
    TOPIC_TREE = "topic_tree"
    CURATE = "curate"  # no teacher: filter an existing dataset into a new one


# The request fields each mode reads.
_MODE_FIELDS = {
    Mode.FIXED: {"prompt_template"},
    Mode.SELF_INSTRUCT: {"topic", "seed_examples"},
    Mode.FROM_INSTRUCTIONS: {"instructions"},
    Mode.EVOL_INSTRUCT: {"topic", "seed_examples", "evol_instruct"},
    Mode.TOPIC_TREE: {"topic", "topic_tree"},
    Mode.CURATE: {"source_path"},
}
_MODE_INPUTS = ("prompt_template", "topic", "seed_examples", "instructions", "evol_instruct", "topic_tree",
                "source_path")


@dataclass(frozen=True)
class Endpoint:
    base_url: str = ""
    model: str = ""
    token: str = field(default="", repr=False)  # never stored, never logged
    skip_tls_verify: bool = False
    request_timeout_s: float = 0.0  # 0: DEFAULT_TIMEOUT_S
    max_retries: int | None = None  # None: DEFAULT_RETRIES


@dataclass(frozen=True)
class Limits:
    concurrency: int = 0  # 0: DEFAULT_CONCURRENCY
    requests_per_minute: float = 0.0  # 0: unlimited


@dataclass(frozen=True)
class Sampling:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    def as_request_fields(self) -> dict[str, Any]:
        """The OpenAI request fields that were set; unset ones keep the endpoint's defaults."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class EvolSettings:
    rounds: int = 0  # 0: evol_instruct.DEFAULT_ROUNDS
    breadth_share: float | None = None  # None: evol_instruct.DEFAULT_BREADTH_SHARE


@dataclass(frozen=True)
class TopicTreeSettings:
    depth: int = 0  # 0: topic_tree.DEFAULT_DEPTH
    breadth: int = 0  # 0: topic_tree.DEFAULT_BREADTH


@dataclass(frozen=True)
class NearDupSettings:
    enabled: bool = False
    threshold: float | None = None  # None: near_dup.DEFAULT_THRESHOLD


@dataclass(frozen=True)
class DecontamSettings:
    eval_paths: tuple[str, ...] = ()  # empty: off
    ngram: int = 0  # 0: decontam.DEFAULT_NGRAM
    threshold: float | None = None  # None: decontam.DEFAULT_THRESHOLD


@dataclass(frozen=True)
class JudgeSettings:
    endpoint: Endpoint = field(default_factory=Endpoint)  # no base_url: no judge
    limits: Limits = field(default_factory=Limits)
    rubric: tuple[tuple[str, str], ...] = ()  # (name, description); empty: judge.DEFAULT_RUBRIC
    min_score: float | None = None  # None: judge.DEFAULT_MIN_SCORE

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint.base_url.strip())


@dataclass(frozen=True)
class FilterSettings:
    near_dup: NearDupSettings = field(default_factory=NearDupSettings)
    decontam: DecontamSettings = field(default_factory=DecontamSettings)
    judge: JudgeSettings = field(default_factory=JudgeSettings)


@dataclass(frozen=True)
class GenerationSpec:
    dataset_name: str = ""
    endpoint: Endpoint = field(default_factory=Endpoint)
    limits: Limits = field(default_factory=Limits)
    sampling: Sampling = field(default_factory=Sampling)
    num_rows: int = 0
    mode: Mode | None = None
    system_prompt: str = ""
    prompt_template: str = ""
    topic: str = ""
    seed_examples: tuple[str, ...] = ()
    instructions: tuple[str, ...] = ()
    evol_instruct: EvolSettings = field(default_factory=EvolSettings)
    topic_tree: TopicTreeSettings = field(default_factory=TopicTreeSettings)
    source_path: str = ""
    filters: FilterSettings = field(default_factory=FilterSettings)

    def public_params(self) -> dict[str, Any]:
        """The spec as JSON-ready data without the tokens: what job.json and params_json hold."""
        data = json.loads(json.dumps(dataclasses.asdict(self)))  # tuples become lists
        data["endpoint"].pop("token", None)
        data["filters"]["judge"]["endpoint"].pop("token", None)
        data["mode"] = str(self.mode) if self.mode else ""
        return data

    @classmethod
    def from_params(cls, params: dict[str, Any], *, token: str, judge_token: str = "") -> GenerationSpec:
        """Rebuild a spec from `public_params()` output plus the tokens given again (resume)."""
        filters = params.get("filters") or {}
        judge = filters.get("judge") or {}
        decontam = filters.get("decontam") or {}
        return cls(
            dataset_name=params["dataset_name"],
            endpoint=Endpoint(**{**params["endpoint"], "token": token}),
            limits=Limits(**params["limits"]),
            sampling=Sampling(**params["sampling"]),
            num_rows=params["num_rows"],
            mode=Mode(params["mode"]) if params.get("mode") else None,
            system_prompt=params.get("system_prompt", ""),
            prompt_template=params.get("prompt_template", ""),
            topic=params.get("topic", ""),
            seed_examples=tuple(params.get("seed_examples", ())),
            instructions=tuple(params.get("instructions", ())),
            evol_instruct=EvolSettings(**params.get("evol_instruct", {})),
            topic_tree=TopicTreeSettings(**params.get("topic_tree", {})),
            source_path=params.get("source_path", ""),
            filters=FilterSettings(
                near_dup=NearDupSettings(**filters.get("near_dup", {})),
                decontam=DecontamSettings(
                    **{**decontam, "eval_paths": tuple(decontam.get("eval_paths", ()))}
                ),
                judge=JudgeSettings(
                    endpoint=Endpoint(**{**judge.get("endpoint", {}), "token": judge_token}),
                    limits=Limits(**judge.get("limits", {})),
                    rubric=tuple(tuple(c) for c in judge.get("rubric", ())),
                    min_score=judge.get("min_score"),
                ),
            ),
        )


def validate_spec(spec: GenerationSpec, *, max_rows: int, max_concurrency: int) -> GenerationSpec:
    """Return `spec` with defaults filled in, or raise InvalidArgument naming the bad field.

    Paths (source_path, filters.decontam.eval_paths) are checked for shape here; the
    manager checks that they exist under its data root.
    """
    validate_name(spec.dataset_name, field="dataset_name")
    if spec.mode is Mode.CURATE:
        if spec.endpoint.base_url.strip():
            raise InvalidArgument(
                "mode curate asks no teacher, so endpoint must be empty; "
                "a judge goes in filters.judge.endpoint.",
                field="endpoint.base_url",
            )
        endpoint = spec.endpoint
    else:
        endpoint = _validate_endpoint(spec.endpoint)
    limits = _validate_limits(spec.limits, max_concurrency=max_concurrency)
    _validate_sampling(spec.sampling)
    if spec.mode is Mode.CURATE and spec.num_rows == 0:
        pass  # every source row
    else:
        _validate_num_rows(spec.num_rows, max_rows=max_rows)
    _validate_text(spec.system_prompt, field="system_prompt")
    _validate_mode_inputs(spec, max_rows=max_rows)
    spec = _validate_strategies(spec)
    filters = _validate_filters(spec.filters, mode=spec.mode, max_concurrency=max_concurrency)
    return dataclasses.replace(spec, endpoint=endpoint, limits=limits, filters=filters)


def _validate_strategies(spec: GenerationSpec) -> GenerationSpec:
    """Defaults filled in for the mode's own strategy settings (the other modes' stay unset)."""
    from datagen_svc import evol_instruct, topic_tree

    if spec.mode is Mode.EVOL_INSTRUCT:
        evol = spec.evol_instruct
        rounds = check_int(
            evol.rounds or evol_instruct.DEFAULT_ROUNDS, field="evol_instruct.rounds", low=1,
            high=evol_instruct.MAX_ROUNDS, default=evol_instruct.DEFAULT_ROUNDS,
            hint="Each round is one more endpoint call per row.",
        )
        share = evol_instruct.DEFAULT_BREADTH_SHARE if evol.breadth_share is None else evol.breadth_share
        if not (math.isfinite(share) and 0 <= share <= 1):
            raise InvalidArgument(
                f"evol_instruct.breadth_share must be from 0 (depth only) to 1 (breadth only); got {share:g}.",
                field="evol_instruct.breadth_share",
            )
        return dataclasses.replace(spec, evol_instruct=EvolSettings(rounds=rounds, breadth_share=share))
    if spec.mode is Mode.TOPIC_TREE:
        tree = spec.topic_tree
        hint = "The tree has breadth ** depth leaves."
        depth = check_int(
            tree.depth or topic_tree.DEFAULT_DEPTH, field="topic_tree.depth", low=1, high=topic_tree.MAX_DEPTH,
            default=topic_tree.DEFAULT_DEPTH, hint=hint,
        )
        breadth = check_int(
            tree.breadth or topic_tree.DEFAULT_BREADTH, field="topic_tree.breadth", low=1,
            high=topic_tree.MAX_BREADTH, default=topic_tree.DEFAULT_BREADTH, hint=hint,
        )
        if (leaves := topic_tree.leaf_count(depth, breadth)) > topic_tree.MAX_LEAVES:
            raise InvalidArgument(
                f"topic_tree breadth {breadth} and depth {depth} make {leaves} leaves; "
                f"at most {topic_tree.MAX_LEAVES} are allowed. Lower the depth or the breadth.",
                field="topic_tree.depth",
            )
        if not spec.topic.strip():
            raise InvalidArgument("mode topic_tree needs a topic to expand.", field="topic")
        return dataclasses.replace(spec, topic_tree=TopicTreeSettings(depth=depth, breadth=breadth))
    if spec.mode is Mode.CURATE:
        _validate_relpath(spec.source_path, field="source_path", example="datasets/support.jsonl")
    return spec


def _validate_filters(filters: FilterSettings, *, mode: Mode, max_concurrency: int) -> FilterSettings:
    from datagen_svc import decontam, near_dup

    near = filters.near_dup
    if near.enabled and mode is Mode.FIXED:
        raise InvalidArgument(
            "mode fixed repeats one instruction by design, so the near-duplicate filter would keep one row.",
            field="filters.near_dup.enabled",
        )
    threshold = near_dup.check_threshold(
        near_dup.DEFAULT_THRESHOLD if near.threshold is None else near.threshold,
        field="filters.near_dup.threshold",
    )
    dec = filters.decontam
    if len(dec.eval_paths) > MAX_EVAL_SETS:
        raise InvalidArgument(
            f"filters.decontam.eval_paths holds more than {MAX_EVAL_SETS} files.", field="filters.decontam.eval_paths"
        )
    for i, path in enumerate(dec.eval_paths):
        _validate_relpath(path, field=f"filters.decontam.eval_paths[{i}]", example="datasets/eval.jsonl")
    ngram = decontam.check_ngram(dec.ngram or decontam.DEFAULT_NGRAM, field="filters.decontam.ngram")
    overlap = decontam.check_threshold(
        decontam.DEFAULT_THRESHOLD if dec.threshold is None else dec.threshold, field="filters.decontam.threshold"
    )
    jud = filters.judge
    if jud.enabled:
        from datagen_svc import judge

        endpoint = _validate_endpoint(jud.endpoint, prefix="filters.judge.endpoint")
        limits = _validate_limits(jud.limits, max_concurrency=max_concurrency, prefix="filters.judge.limits")
        rubric = tuple(
            (c.name, c.description) for c in judge.check_rubric(jud.rubric, field="filters.judge.rubric")
        )
        min_score = judge.check_min_score(
            judge.DEFAULT_MIN_SCORE if jud.min_score is None else jud.min_score, field="filters.judge.min_score"
        )
        jud = JudgeSettings(endpoint=endpoint, limits=limits, rubric=rubric, min_score=min_score)
    elif jud.rubric or jud.min_score is not None or jud.endpoint.model or jud.endpoint.token:
        raise InvalidArgument(
            "filters.judge.endpoint.base_url is required to use the judge, e.g. http://127.0.0.1:8000/v1.",
            field="filters.judge.endpoint.base_url",
        )
    return FilterSettings(
        near_dup=NearDupSettings(enabled=near.enabled, threshold=threshold),
        decontam=DecontamSettings(eval_paths=dec.eval_paths, ngram=ngram, threshold=overlap),
        judge=jud,
    )


def _validate_relpath(path: str, *, field: str, example: str) -> None:
    if not path.strip():
        raise InvalidArgument(f"{field} is required: a JSONL file under the data root, e.g. {example}.", field=field)
    parts = PurePosixPath(path).parts
    if path.startswith("/") or ".." in parts or "\\" in path or not path.endswith(".jsonl"):
        raise InvalidArgument(
            f"{field} must be a .jsonl path relative to the data root without '..', e.g. {example} (got {path!r}).",
            field=field,
        )


def _validate_endpoint(endpoint: Endpoint, *, prefix: str = "endpoint") -> Endpoint:
    url = endpoint.base_url.strip()
    if not url:
        raise InvalidArgument(
            f"{prefix}.base_url is required, e.g. http://127.0.0.1:8000/v1.", field=f"{prefix}.base_url"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidArgument(
            f"{prefix}.base_url {url!r} is not a valid URL (check the port).", field=f"{prefix}.base_url"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(
            f"{prefix}.base_url must start with http:// or https:// (got {url!r}).",
            field=f"{prefix}.base_url",
        )
    if not parts.hostname:
        raise InvalidArgument(
            f"{prefix}.base_url needs a host, e.g. http://127.0.0.1:8000/v1.", field=f"{prefix}.base_url"
        )
    # The URL is stored with the job, so it must not smuggle credentials past the token field.
    if parts.username or parts.password:
        raise InvalidArgument(
            f"{prefix}.base_url must not embed credentials; put the token in {prefix}.token.",
            field=f"{prefix}.base_url",
        )
    if parts.query or parts.fragment:
        raise InvalidArgument(
            f"{prefix}.base_url must not carry a query string or fragment.", field=f"{prefix}.base_url"
        )
    if not endpoint.model.strip():
        raise InvalidArgument(
            f"{prefix}.model is required: the model name the endpoint serves.", field=f"{prefix}.model"
        )
    if len(endpoint.model) > 512:
        raise InvalidArgument(f"{prefix}.model is longer than 512 characters.", field=f"{prefix}.model")
    # Visible ASCII only: anything else can't go in an Authorization header (httpx refuses it mid-job).
    if not all("!" <= ch <= "~" for ch in endpoint.token) or len(endpoint.token) > 8192:
        raise InvalidArgument(
            f"{prefix}.token must be a single bearer token of visible ASCII characters, without spaces or line breaks.",
            field=f"{prefix}.token",
        )
    timeout = endpoint.request_timeout_s
    if not math.isfinite(timeout) or timeout < 0 or timeout > MAX_TIMEOUT_S:
        raise InvalidArgument(
            f"{prefix}.request_timeout_s must be between 0 (default {DEFAULT_TIMEOUT_S:g}) "
            f"and {MAX_TIMEOUT_S:g} seconds.",
            field=f"{prefix}.request_timeout_s",
        )
    retries = DEFAULT_RETRIES if endpoint.max_retries is None else endpoint.max_retries
    if not 0 <= retries <= MAX_RETRIES:
        raise InvalidArgument(
            f"{prefix}.max_retries must be between 0 and {MAX_RETRIES}.", field=f"{prefix}.max_retries"
        )
    return dataclasses.replace(
        endpoint,
        base_url=url.rstrip("/"),
        request_timeout_s=timeout or DEFAULT_TIMEOUT_S,
        max_retries=retries,
    )


def _validate_limits(limits: Limits, *, max_concurrency: int, prefix: str = "limits") -> Limits:
    if limits.concurrency < 0 or limits.concurrency > max_concurrency:
        raise InvalidArgument(
            f"{prefix}.concurrency must be between 1 and {max_concurrency} (0 means {DEFAULT_CONCURRENCY}).",
            field=f"{prefix}.concurrency",
        )
    rpm = limits.requests_per_minute
    if not math.isfinite(rpm) or rpm < 0 or rpm > MAX_RPM:
        raise InvalidArgument(
            f"{prefix}.requests_per_minute must be between 0 (unlimited) and {MAX_RPM:,.0f}.",
            field=f"{prefix}.requests_per_minute",
        )
    # The default is capped by the service's maximum; an explicit value over it was refused above.
    concurrency = limits.concurrency or min(DEFAULT_CONCURRENCY, max_concurrency)
    return Limits(concurrency=concurrency, requests_per_minute=rpm)


def _validate_sampling(sampling: Sampling) -> None:
    if sampling.temperature is not None and not (
        math.isfinite(sampling.temperature) and 0 <= sampling.temperature <= 2
    ):
        raise InvalidArgument("sampling.temperature must be between 0 and 2.", field="sampling.temperature")
    if sampling.top_p is not None and not (math.isfinite(sampling.top_p) and 0 < sampling.top_p <= 1):
        raise InvalidArgument("sampling.top_p must be greater than 0 and at most 1.", field="sampling.top_p")
    if sampling.max_tokens is not None and not 1 <= sampling.max_tokens <= MAX_TOKENS:
        raise InvalidArgument(
            f"sampling.max_tokens must be between 1 and {MAX_TOKENS}.", field="sampling.max_tokens"
        )


def _validate_num_rows(num_rows: int, *, max_rows: int) -> None:
    if num_rows <= 0:
        raise InvalidArgument(f"num_rows must be at least 1 (got {num_rows}).", field="num_rows")
    if num_rows > max_rows:
        raise InvalidArgument(
            f"num_rows {num_rows} is more than this service allows ({max_rows}); "
            "split the work into several datasets.",
            field="num_rows",
        )


def _validate_text(text: str, *, field: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidArgument(f"{field} is longer than {MAX_TEXT_CHARS} characters.", field=field)


def _validate_mode_inputs(spec: GenerationSpec, *, max_rows: int) -> None:
    if spec.mode is None:
        raise InvalidArgument(f"mode is required: one of {', '.join(Mode)}.", field="mode")
    # Inputs of another mode would be silently ignored; refuse them so the caller notices.
    used = _MODE_FIELDS[spec.mode]
    unset = GenerationSpec()
    for name in _MODE_INPUTS:
        if name not in used and getattr(spec, name) != getattr(unset, name):
            owner = next(m for m, fields in _MODE_FIELDS.items() if name in fields)
            raise InvalidArgument(
                f"{name} is only used with mode {owner}; this job's mode is {spec.mode}.", field=name
            )
    if spec.mode is Mode.FIXED:
        if not spec.prompt_template.strip():
            raise InvalidArgument(
                "prompt_template is required with mode fixed: it is every row's instruction.",
                field="prompt_template",
            )
        _validate_text(spec.prompt_template, field="prompt_template")
    elif spec.mode in (Mode.SELF_INSTRUCT, Mode.EVOL_INSTRUCT, Mode.TOPIC_TREE):
        if not spec.topic.strip() and not spec.seed_examples:
            raise InvalidArgument(
                f"mode {spec.mode} needs a topic or seed_examples to draw instructions from.", field="topic"
            )
        _validate_text(spec.topic, field="topic")
        if len(spec.seed_examples) > MAX_SEEDS:
            raise InvalidArgument(
                f"seed_examples holds more than {MAX_SEEDS} examples.", field="seed_examples"
            )
        _validate_items(spec.seed_examples, field="seed_examples")
    elif spec.mode is Mode.FROM_INSTRUCTIONS:
        if not spec.instructions:
            raise InvalidArgument(
                "mode from_instructions needs a non-empty instructions list.", field="instructions"
            )
        if len(spec.instructions) > max_rows:
            raise InvalidArgument(f"instructions holds more than {max_rows} items.", field="instructions")
        _validate_items(spec.instructions, field="instructions")
        if spec.num_rows > len(spec.instructions):
            raise InvalidArgument(
                f"num_rows ({spec.num_rows}) is more than the {len(spec.instructions)} instructions given; "
                "each instruction yields at most one row.",
                field="num_rows",
            )


def _validate_items(items: tuple[str, ...], *, field: str) -> None:
    for i, item in enumerate(items):
        if not item.strip():
            raise InvalidArgument(f"{field}[{i}] is empty.", field=f"{field}[{i}]")
        _validate_text(item, field=f"{field}[{i}]")
