"""What a generation request may ask for: limits, and the checks that span fields.

Serializers and admin forms check types and ranges with these constants; the
cross-field rules live in GenerationParams so the API and the admin agree.
The endpoint token is deliberately not a field: it travels beside the params
and is never stored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from control_plane.core.errors import InvalidArgument
from synthtune.paths import validate_name

MODES = ("fixed", "self_instruct", "from_instructions")
MAX_ROWS = 100_000  # the datagen service's default cap; it rejects more with INVALID_ARGUMENT too
MAX_CONCURRENCY = 64
MAX_RETRIES = 20
MAX_REQUEST_TIMEOUT_S = 600.0
MAX_TOKENS = 32_768
MAX_TEXT = 20_000  # prompts, topics, one instruction


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

    def __post_init__(self) -> None:
        validate_name(self.name, field="name")
        for name in ("request_timeout_s", "requests_per_minute", "temperature", "top_p"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise InvalidArgument(f"{name} must be a finite number.", field=name)
        _check_url(self.base_url)
        if not self.model.strip():
            raise InvalidArgument("model is required: the model name the endpoint serves.", field="model")
        if self.mode not in MODES:
            raise InvalidArgument(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}.", field="mode")
        self.seed_examples = [s for s in self.seed_examples if s.strip()]
        self.instructions = [s for s in self.instructions if s.strip()]
        if self.mode == "fixed" and not self.prompt_template.strip():
            raise InvalidArgument(
                "prompt_template is required in fixed mode: it is the instruction of every row.",
                field="prompt_template",
            )
        if self.mode == "self_instruct" and not (self.topic.strip() or self.seed_examples):
            raise InvalidArgument(
                "self_instruct mode needs a topic or seed_examples to draw instructions from.", field="topic"
            )
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
        """The params to record with the dataset (no token: it is not a field)."""
        return {key: value for key, value in asdict(self).items() if value not in (None, "", [])}


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"base_url must be an http(s) URL of an OpenAI-compatible API, such as "
            f"http://127.0.0.1:8000/v1, not {url[:200]!r}.",
            field="base_url",
        )
    if parts.username or parts.password:
        raise InvalidArgument(
            "base_url must not carry credentials; pass the token in the token field.", field="base_url"
        )
