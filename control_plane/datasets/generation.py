"""What a generation request may ask for: limits, and the checks that span fields.

Serializers and admin forms check types and ranges with these constants; the
cross-field rules live in GenerationParams, CurateParams and Filters so the API
and the admin agree. Endpoint tokens (the teacher's and the judge's) are
deliberately not fields: they travel beside the params and are never stored.

Field names in errors are the API's: flat for the old fields ("base_url"),
dotted for nested ones ("filters.near_dup.threshold", "evol_instruct.rounds").
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from control_plane.core.errors import InvalidArgument
from synthtune.paths import validate_name

MODES = ("fixed", "self_instruct", "from_instructions", "evol_instruct", "topic_tree")
MAX_ROWS = 100_000  # the datagen service's default cap; it rejects more with INVALID_ARGUMENT too
MAX_CONCURRENCY = 64
MAX_RETRIES = 20
MAX_REQUEST_TIMEOUT_S = 600.0
MAX_TOKENS = 32_768
MAX_TEXT = 20_000  # prompts, topics, one instruction

# Strategy settings (the datagen proto's EvolInstruct and TopicTree); unset takes the service's default.
MAX_EVOL_ROUNDS = 5  # default 2
MAX_TREE_DEPTH = 4  # default 2
MAX_TREE_BREADTH = 10  # default 3
# Filters (the datagen proto's Filters).
NEAR_DUP_ABOVE = 0.5  # threshold in (0.5, 1], default 0.8
MIN_NGRAM, MAX_NGRAM = 3, 50  # default 8
MIN_SCORE, MAX_SCORE = 1.0, 5.0  # judge min_score, default 3
MAX_EVAL_SETS = 20
MAX_CRITERIA = 10
MAX_CRITERION_DESCRIPTION = 500
_CRITERION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _finite(value: float | None, *, field: str) -> None:
    if value is not None and not math.isfinite(value):
        raise InvalidArgument(f"{field} must be a finite number.", field=field)


def _int_range(value: int | None, *, field: str, low: int, high: int, default: str) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidArgument(
            f"{field} must be from {low} to {high} (got {value}); leave it out for the default ({default}).",
            field=field,
        )


# --- filters ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class NearDupFilter:
    """Drop rows whose instruction is a near duplicate (MinHash Jaccard) of a kept one."""

    enabled: bool = True
    threshold: float | None = None  # (0.5, 1]; None: the service's 0.8

    def __post_init__(self) -> None:
        name = "filters.near_dup.threshold"
        _finite(self.threshold, field=name)
        if self.threshold is not None and not NEAR_DUP_ABOVE < self.threshold <= 1:
            raise InvalidArgument(
                f"{name} must be greater than {NEAR_DUP_ABOVE:g} and at most 1 (got {self.threshold:g}); "
                "the default is 0.8. Lower drops more rows.",
                field=name,
            )


@dataclass(kw_only=True)
class DecontamFilter:
    """Drop rows sharing word n-grams with evaluation sets: datasets (by name, or "name@N" for
    version N of its family) and adapters' eval splits, by name. The services resolve them to files."""

    eval_datasets: list[str] = field(default_factory=list)
    eval_adapters: list[str] = field(default_factory=list)
    ngram: int | None = None  # 3 to 50; None: the service's 8
    threshold: float | None = None  # (0, 1]; None: the service's 0.5

    def __post_init__(self) -> None:
        prefix = "filters.decontam"
        for key in ("eval_datasets", "eval_adapters"):
            names = getattr(self, key)
            for i, name in enumerate(names):
                validate_name(
                    name.partition("@")[0] if key == "eval_datasets" else name, field=f"{prefix}.{key}[{i}]"
                )
            setattr(self, key, list(dict.fromkeys(names)))
        if not (self.eval_datasets or self.eval_adapters):
            raise InvalidArgument(
                f"{prefix} needs eval_datasets or eval_adapters: the evaluation sets to keep out of the data.",
                field=f"{prefix}.eval_datasets",
            )
        if len(self.eval_datasets) + len(self.eval_adapters) > MAX_EVAL_SETS:
            raise InvalidArgument(
                f"{prefix} names more than {MAX_EVAL_SETS} evaluation sets.", field=f"{prefix}.eval_datasets"
            )
        _int_range(self.ngram, field=f"{prefix}.ngram", low=MIN_NGRAM, high=MAX_NGRAM, default="8")
        _finite(self.threshold, field=f"{prefix}.threshold")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise InvalidArgument(
                f"{prefix}.threshold must be greater than 0 and at most 1 (got {self.threshold:g}); "
                "the default is 0.5. Lower drops more rows.",
                field=f"{prefix}.threshold",
            )


@dataclass(kw_only=True)
class JudgeFilter:
    """Score each row 1 to 5 per rubric criterion on an OpenAI-compatible endpoint; drop rows
    whose mean is below min_score. The endpoint's token is not a field."""

    base_url: str
    model: str
    concurrency: int | None = None
    request_timeout_s: float | None = None
    rubric: list[dict[str, str]] = field(
        default_factory=list
    )  # [{"name", "description"}]; empty: the default
    min_score: float | None = None  # 1 to 5; None: the service's 3

    def __post_init__(self) -> None:
        prefix = "filters.judge"
        _check_url(self.base_url, field=f"{prefix}.base_url", token_field=f"{prefix}.token")
        if not self.model.strip():
            raise InvalidArgument(
                f"{prefix}.model is required: the model name the judge endpoint serves.",
                field=f"{prefix}.model",
            )
        _int_range(self.concurrency, field=f"{prefix}.concurrency", low=1, high=MAX_CONCURRENCY, default="8")
        _finite(self.request_timeout_s, field=f"{prefix}.request_timeout_s")
        _finite(self.min_score, field=f"{prefix}.min_score")
        if self.min_score is not None and not MIN_SCORE <= self.min_score <= MAX_SCORE:
            raise InvalidArgument(
                f"{prefix}.min_score must be from {MIN_SCORE:g} to {MAX_SCORE:g} (got {self.min_score:g}); "
                "the default is 3. Rows whose mean score is below it are dropped.",
                field=f"{prefix}.min_score",
            )
        if len(self.rubric) > MAX_CRITERIA:
            raise InvalidArgument(
                f"{prefix}.rubric has {len(self.rubric)} criteria; at most {MAX_CRITERIA} are allowed.",
                field=f"{prefix}.rubric",
            )
        seen: set[str] = set()
        for i, criterion in enumerate(self.rubric):
            name = criterion.get("name", "")
            if not _CRITERION_NAME.match(name) or name == "reason" or name in seen:
                raise InvalidArgument(
                    f"{prefix}.rubric[{i}].name must be a new name of 1 to 40 lower-case letters, digits or "
                    f"'_', starting with a letter, and not 'reason' (got {name!r}).",
                    field=f"{prefix}.rubric[{i}].name",
                )
            seen.add(name)
            if len(criterion.get("description", "")) > MAX_CRITERION_DESCRIPTION:
                raise InvalidArgument(
                    f"{prefix}.rubric[{i}].description is longer than {MAX_CRITERION_DESCRIPTION} characters.",
                    field=f"{prefix}.rubric[{i}].description",
                )
        self.rubric = [{"name": c["name"], "description": c.get("description", "")} for c in self.rubric]


@dataclass(kw_only=True)
class Filters:
    """The quality filters of a job; a filter left out is off. Exact duplicates are always
    dropped by the service (except in mode fixed)."""

    near_dup: NearDupFilter | None = None
    decontam: DecontamFilter | None = None
    judge: JudgeFilter | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Filters:
        """From the API's nested JSON (already type-checked); the judge's token must be out of it."""
        data = data or {}
        near_dup = data.get("near_dup")
        decontam = data.get("decontam")
        judge = data.get("judge")
        return cls(
            near_dup=NearDupFilter(**near_dup) if near_dup is not None else None,
            decontam=DecontamFilter(**decontam) if decontam is not None else None,
            judge=JudgeFilter(**judge) if judge is not None else None,
        )

    def __bool__(self) -> bool:
        return any((self.near_dup and self.near_dup.enabled, self.decontam, self.judge))

    def as_json(self) -> dict[str, Any]:
        """The filters to record (no token: it is not a field); unset values left out."""
        return {
            name: {key: value for key, value in asdict(part).items() if value not in (None, "", [])}
            for name in ("near_dup", "decontam", "judge")
            if (part := getattr(self, name)) is not None
        }


# --- requests --------------------------------------------------------------------------


@dataclass(kw_only=True)
class EvolInstructSettings:
    rounds: int | None = None  # 1 to 5; None: the service's 2
    breadth_share: float | None = None  # 0 to 1; None: the service's 0.25

    def __post_init__(self) -> None:
        _int_range(self.rounds, field="evol_instruct.rounds", low=1, high=MAX_EVOL_ROUNDS, default="2")
        _finite(self.breadth_share, field="evol_instruct.breadth_share")
        if self.breadth_share is not None and not 0 <= self.breadth_share <= 1:
            raise InvalidArgument(
                f"evol_instruct.breadth_share must be from 0 (depth only) to 1 (breadth only); "
                f"got {self.breadth_share:g}.",
                field="evol_instruct.breadth_share",
            )


@dataclass(kw_only=True)
class TopicTreeSettings:
    depth: int | None = None  # 1 to 4; None: the service's 2
    breadth: int | None = None  # 1 to 10; None: the service's 3

    def __post_init__(self) -> None:
        _int_range(self.depth, field="topic_tree.depth", low=1, high=MAX_TREE_DEPTH, default="2")
        _int_range(self.breadth, field="topic_tree.breadth", low=1, high=MAX_TREE_BREADTH, default="3")


def _settings(value, cls):
    return cls(**value) if isinstance(value, dict) else value


@dataclass(kw_only=True)
class GenerationParams:
    name: str
    base_url: str
    model: str
    mode: str = "self_instruct"
    num_rows: int | None = None
    skip_tls_verify: bool = False
    request_timeout_s: float | None = None
    max_retries: int | None = None
    concurrency: int | None = None
    requests_per_minute: float | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    system_prompt: str = ""
    prompt_template: str = ""
    topic: str = ""
    seed_examples: list[str] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    # Only with mode evol_instruct / topic_tree; dicts are accepted and converted.
    evol_instruct: EvolInstructSettings | None = None
    topic_tree: TopicTreeSettings | None = None
    filters: Filters = field(default_factory=Filters)

    def __post_init__(self) -> None:
        validate_name(self.name, field="name")
        for name in ("request_timeout_s", "requests_per_minute", "temperature", "top_p"):
            _finite(getattr(self, name), field=name)
        _check_url(self.base_url, field="base_url", token_field="token")
        if not self.model.strip():
            raise InvalidArgument("model is required: the model name the endpoint serves.", field="model")
        if self.mode not in MODES:
            raise InvalidArgument(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}.", field="mode")
        self.evol_instruct = _settings(self.evol_instruct, EvolInstructSettings)
        self.topic_tree = _settings(self.topic_tree, TopicTreeSettings)
        if isinstance(self.filters, dict) or self.filters is None:
            self.filters = Filters.from_dict(self.filters)
        for name in ("evol_instruct", "topic_tree"):
            if getattr(self, name) is not None and self.mode != name:
                raise InvalidArgument(
                    f"{name} settings are only used with mode {name}; this request's mode is {self.mode}.",
                    field=name,
                )
        self.seed_examples = [s for s in self.seed_examples if s.strip()]
        self.instructions = [s for s in self.instructions if s.strip()]
        if self.mode == "fixed" and not self.prompt_template.strip():
            raise InvalidArgument(
                "prompt_template is required in fixed mode: it is the instruction of every row.",
                field="prompt_template",
            )
        if self.mode == "fixed" and self.filters.near_dup and self.filters.near_dup.enabled:
            raise InvalidArgument(
                "fixed mode repeats one instruction by design, so the near-duplicate filter would keep one row.",
                field="filters.near_dup.enabled",
            )
        if self.mode in ("self_instruct", "evol_instruct") and not (self.topic.strip() or self.seed_examples):
            raise InvalidArgument(
                f"{self.mode} mode needs a topic or seed_examples to draw instructions from.", field="topic"
            )
        if self.mode == "topic_tree" and not self.topic.strip():
            raise InvalidArgument("topic_tree mode needs a topic to expand into subtopics.", field="topic")
        if self.mode == "from_instructions":
            if not self.instructions:
                raise InvalidArgument(
                    "from_instructions mode needs instructions: a list with one instruction per row.",
                    field="instructions",
                )
            if self.num_rows is None:
                self.num_rows = len(self.instructions)
        if self.num_rows is None:
            raise InvalidArgument("num_rows is required: how many rows to generate.", field="num_rows")
        if not 1 <= self.num_rows <= MAX_ROWS:
            raise InvalidArgument(
                f"num_rows must be between 1 and {MAX_ROWS}, not {self.num_rows}.", field="num_rows"
            )

    def as_json(self) -> dict[str, Any]:
        """The params to record with the dataset (no tokens: they are not fields)."""
        data = {
            key: value
            for key, value in asdict(self).items()
            if key not in ("evol_instruct", "topic_tree", "filters") and value not in (None, "", [])
        }
        for name in ("evol_instruct", "topic_tree"):
            if (settings := getattr(self, name)) is not None:
                data[name] = {key: value for key, value in asdict(settings).items() if value is not None}
        if filters := self.filters.as_json():
            data["filters"] = filters
        return data


@dataclass(kw_only=True)
class CurateParams:
    """Filter an existing dataset into a new one (no teacher): the datagen service's mode curate.

    Exact duplicates and empty outputs are always dropped, so no filters at all is a plain dedupe."""

    name: str = ""  # the new dataset; empty: the source's next version name (services.dataset_curate)
    filters: Filters = field(default_factory=Filters)
    num_rows: int | None = None  # the first rows of the source only; None: every row

    def __post_init__(self) -> None:
        if self.name:
            validate_name(self.name, field="name")
        if isinstance(self.filters, dict) or self.filters is None:
            self.filters = Filters.from_dict(self.filters)
        if self.num_rows is not None and not 1 <= self.num_rows <= MAX_ROWS:
            raise InvalidArgument(
                f"num_rows must be between 1 and {MAX_ROWS}, not {self.num_rows}; leave it out for every row.",
                field="num_rows",
            )

    def as_json(self) -> dict[str, Any]:
        """The params to record with the new dataset: the filters without tokens, and num_rows if set."""
        data: dict[str, Any] = {"filters": self.filters.as_json()}
        if self.num_rows is not None:
            data["num_rows"] = self.num_rows
        return data


def _check_url(url: str, *, field: str, token_field: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"{field} must be an http(s) URL of an OpenAI-compatible API, such as "
            f"http://127.0.0.1:8000/v1, not {url[:200]!r}.",
            field=field,
        )
    if parts.username or parts.password:
        raise InvalidArgument(
            f"{field} must not carry credentials; pass the token in the {token_field} field.", field=field
        )
