"""What a generation job asks for, and the checks that make it safe to run.

`GenerationSpec` is the domain form of StartGenerationRequest. `validate_spec`
fills documented defaults and raises InvalidArgument naming the exact field
(proto paths such as "endpoint.base_url") with a message a person can act on.
The token lives only in `Endpoint.token`; `public_params` never includes it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

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


class Mode(StrEnum):
    FIXED = "fixed"
    SELF_INSTRUCT = "self_instruct"
    FROM_INSTRUCTIONS = "from_instructions"


# The request fields each mode reads.
_MODE_FIELDS = {
    Mode.FIXED: {"prompt_template"},
    Mode.SELF_INSTRUCT: {"topic", "seed_examples"},
    Mode.FROM_INSTRUCTIONS: {"instructions"},
}


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

    def public_params(self) -> dict[str, Any]:
        """The spec as JSON-ready data without the token: what job.json and params_json hold."""
        data = dataclasses.asdict(self)
        data["endpoint"].pop("token", None)
        data["mode"] = str(self.mode) if self.mode else ""
        data["seed_examples"] = list(self.seed_examples)
        data["instructions"] = list(self.instructions)
        return data

    @classmethod
    def from_params(cls, params: dict[str, Any], *, token: str) -> GenerationSpec:
        """Rebuild a spec from `public_params()` output plus a token given again (resume)."""
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
        )


def validate_spec(spec: GenerationSpec, *, max_rows: int, max_concurrency: int) -> GenerationSpec:
    """Return `spec` with defaults filled in, or raise InvalidArgument naming the bad field."""
    validate_name(spec.dataset_name, field="dataset_name")
    endpoint = _validate_endpoint(spec.endpoint)
    limits = _validate_limits(spec.limits, max_concurrency=max_concurrency)
    _validate_sampling(spec.sampling)
    _validate_num_rows(spec.num_rows, max_rows=max_rows)
    _validate_text(spec.system_prompt, field="system_prompt")
    _validate_mode_inputs(spec, max_rows=max_rows)
    return dataclasses.replace(spec, endpoint=endpoint, limits=limits)


def _validate_endpoint(endpoint: Endpoint) -> Endpoint:
    url = endpoint.base_url.strip()
    if not url:
        raise InvalidArgument(
            "endpoint.base_url is required, e.g. http://127.0.0.1:8000/v1.", field="endpoint.base_url"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidArgument(
            f"endpoint.base_url {url!r} is not a valid URL (check the port).", field="endpoint.base_url"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(
            f"endpoint.base_url must start with http:// or https:// (got {url!r}).",
            field="endpoint.base_url",
        )
    if not parts.hostname:
        raise InvalidArgument(
            "endpoint.base_url needs a host, e.g. http://127.0.0.1:8000/v1.", field="endpoint.base_url"
        )
    # The URL is stored with the job, so it must not smuggle credentials past the token field.
    if parts.username or parts.password:
        raise InvalidArgument(
            "endpoint.base_url must not embed credentials; put the token in endpoint.token.",
            field="endpoint.base_url",
        )
    if parts.query or parts.fragment:
        raise InvalidArgument(
            "endpoint.base_url must not carry a query string or fragment.", field="endpoint.base_url"
        )
    if not endpoint.model.strip():
        raise InvalidArgument(
            "endpoint.model is required: the model name the endpoint serves.", field="endpoint.model"
        )
    if len(endpoint.model) > 512:
        raise InvalidArgument("endpoint.model is longer than 512 characters.", field="endpoint.model")
    if any(ch in endpoint.token for ch in "\r\n\t ") or len(endpoint.token) > 8192:
        raise InvalidArgument(
            "endpoint.token must be a single bearer token without spaces or line breaks.",
            field="endpoint.token",
        )
    timeout = endpoint.request_timeout_s
    if not math.isfinite(timeout) or timeout < 0 or timeout > MAX_TIMEOUT_S:
        raise InvalidArgument(
            f"endpoint.request_timeout_s must be between 0 (default {DEFAULT_TIMEOUT_S:g}) "
            f"and {MAX_TIMEOUT_S:g} seconds.",
            field="endpoint.request_timeout_s",
        )
    retries = DEFAULT_RETRIES if endpoint.max_retries is None else endpoint.max_retries
    if not 0 <= retries <= MAX_RETRIES:
        raise InvalidArgument(
            f"endpoint.max_retries must be between 0 and {MAX_RETRIES}.", field="endpoint.max_retries"
        )
    return dataclasses.replace(
        endpoint,
        base_url=url.rstrip("/"),
        request_timeout_s=timeout or DEFAULT_TIMEOUT_S,
        max_retries=retries,
    )


def _validate_limits(limits: Limits, *, max_concurrency: int) -> Limits:
    if limits.concurrency < 0 or limits.concurrency > max_concurrency:
        raise InvalidArgument(
            f"limits.concurrency must be between 1 and {max_concurrency} (0 means {DEFAULT_CONCURRENCY}).",
            field="limits.concurrency",
        )
    rpm = limits.requests_per_minute
    if not math.isfinite(rpm) or rpm < 0 or rpm > MAX_RPM:
        raise InvalidArgument(
            f"limits.requests_per_minute must be between 0 (unlimited) and {MAX_RPM:,.0f}.",
            field="limits.requests_per_minute",
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
        raise InvalidArgument("mode is required: fixed, self_instruct or from_instructions.", field="mode")
    # Inputs of another mode would be silently ignored; refuse them so the caller notices.
    used = _MODE_FIELDS[spec.mode]
    for name in ("prompt_template", "topic", "seed_examples", "instructions"):
        if name not in used and getattr(spec, name):
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
    elif spec.mode is Mode.SELF_INSTRUCT:
        if not spec.topic.strip() and not spec.seed_examples:
            raise InvalidArgument(
                "mode self_instruct needs a topic or seed_examples to draw instructions from.", field="topic"
            )
        _validate_text(spec.topic, field="topic")
        if len(spec.seed_examples) > MAX_SEEDS:
            raise InvalidArgument(
                f"seed_examples holds more than {MAX_SEEDS} examples.", field="seed_examples"
            )
        _validate_items(spec.seed_examples, field="seed_examples")
    else:
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
