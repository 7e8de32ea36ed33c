"""What a comparison sends and how it is scored: sampling, request bodies, exact match, chrF, percentiles.

Both sides of a comparison get the same body except `model`. Requests are built
by synthtune.prompt_format, the module the trainer trains with, so a prompt is
served exactly as training formatted it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synthtune.errors import InvalidArgument
from synthtune.prompt_format import PromptFormat, reference_answer, serving_request, training_example

MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class Sampling:
    """Sampling settings as requested; None means "not set"."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None


def sampling_params(sampling: Sampling, *, default_max_tokens: int) -> dict[str, Any]:
    """The OpenAI parameters both sides get: temperature (default 0, greedy) and max_tokens always,
    top_p and seed only when set. Raises InvalidArgument naming the field."""
    temperature = 0.0 if sampling.temperature is None else sampling.temperature
    if not math.isfinite(temperature) or not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise InvalidArgument(f"sampling.temperature must be between 0 and {MAX_TEMPERATURE:g}.",
                              field="sampling.temperature")
    params: dict[str, Any] = {"temperature": temperature}
    max_tokens = default_max_tokens if sampling.max_tokens is None else sampling.max_tokens
    if max_tokens < 1:
        raise InvalidArgument("sampling.max_tokens must be at least 1.", field="sampling.max_tokens")
    params["max_tokens"] = max_tokens
    if sampling.top_p is not None:
        if not math.isfinite(sampling.top_p) or not 0.0 < sampling.top_p <= 1.0:
            raise InvalidArgument("sampling.top_p must be in (0, 1].", field="sampling.top_p")
        params["top_p"] = sampling.top_p
    if sampling.seed is not None:
        params["seed"] = sampling.seed
    return params


def prompt_request(prompt: str, fmt: PromptFormat, *, system: str | None) -> tuple[str, dict[str, Any]]:
    """(route, body fragment) for a free-text prompt, in the adapter's format."""
    return serving_request(prompt, fmt, system=system or None)


@dataclass(frozen=True)
class RowRequest:
    prompt: str  # what a person reads: the instruction (and input)
    reference: str  # the expected answer
    route: str
    body: dict[str, Any]


def row_request(row: dict[str, Any], fmt: PromptFormat) -> RowRequest:
    """A dataset row as the model saw it in training, minus the answer.

    chat: the row's messages up to the answer (system and earlier turns kept);
    instruction: the same "### Instruction:" text, with the row's input and system.
    """
    prompt, reference = reference_answer(row)
    example = training_example(row, fmt)
    route, _ = serving_request(prompt, fmt)
    if fmt == "chat":
        body = {"messages": example["messages"][:-1]}
    else:
        body = {"prompt": example["prompt"]}
    return RowRequest(prompt=prompt, reference=reference, route=route, body=body)


def exact_match(text: str, reference: str) -> bool:
    return text.strip() == reference.strip()


_chrf = None


def chrf(text: str, reference: str) -> float:
    """Sentence-level chrF (sacrebleu defaults: character 6-grams, beta 2), 0-100."""
    global _chrf
    if _chrf is None:
        from sacrebleu.metrics import CHRF

        _chrf = CHRF()
    return float(_chrf.sentence_score(text.strip(), [reference.strip()]).score)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


@dataclass(frozen=True)
class SideSummary:
    exact_match_rate: float
    chrf: float
    latency_p50_ms: float
    latency_p95_ms: float
    stop_rate: float


def summarize(*, exact: Sequence[bool], chrfs: Sequence[float], latencies_ms: Sequence[float],
              finish_reasons: Sequence[str], rows: int) -> SideSummary:
    """Rates over `rows` (failed rows count as misses); latency over the calls that answered."""
    if rows == 0:
        return SideSummary(0.0, 0.0, 0.0, 0.0, 0.0)
    return SideSummary(
        exact_match_rate=sum(exact) / rows,
        chrf=sum(chrfs) / rows,
        latency_p50_ms=percentile(latencies_ms, 50),
        latency_p95_ms=percentile(latencies_ms, 95),
        stop_rate=sum(reason == "stop" for reason in finish_reasons) / rows,
    )


__all__ = ["RowRequest", "Sampling", "SideSummary", "chrf", "exact_match", "percentile", "prompt_request",
           "row_request", "sampling_params", "summarize"]
