"""What a fine-tuning request may ask for: limits, and the checks serializers can't express.

Serializers and admin forms check types and inclusive ranges with these constants;
RunParams checks the rest (open bounds such as lr > 0, finiteness, names, unknown
hyperparameters) so the API and the admin reject the same things with the same
field names. The trainer validates everything again, plus what only it can know
(the model's context length, its layer names, the datasets' token lengths).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from control_plane.core.errors import InvalidArgument
from synthtune.paths import validate_name

DEFAULT_BASE_MODEL = "microsoft/Phi-3-mini-4k-instruct"
MAX_DATASETS = 20
MAX_TARGET_MODULES = 64
MAX_EPOCHS = 100
MAX_LEARNING_RATE = 1.0
MAX_BATCH_SIZE = 1024
MAX_GRAD_ACCUM = 1024
MIN_MAX_LENGTH = 16
MAX_MAX_LENGTH = 1_048_576  # the model's own context length is the trainer's check
MAX_RANK = 1024
MAX_ALPHA = 10_000.0
MAX_EVAL_FRACTION = 0.5  # exclusive
MAX_SEED = 2**32 - 1
DEVICES = ("auto", "cuda", "mps", "cpu")
MAX_NODES = 64
MAX_PROCESSES_PER_NODE = 64
MAX_EVAL_STEPS = 1_000_000
MAX_EVAL_GENERATE_ROWS = 1000
MAX_EVAL_NEW_TOKENS = 4096
MAX_PATIENCE = 1000
MAX_THRESHOLD = 1e6
# The trainer's TrainingOptions.best_metric and report_to choices.
BEST_METRICS = ("eval_loss", "eval_mean_token_accuracy", "eval_exact_match", "eval_chrf", "eval_judge_score")
REPORT_TO = ("none", "mlflow", "tensorboard")

# Same shape the trainer accepts: 'org/name' or 'name'.
_MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})?$")
_MODULE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

# name: (kind, low, high, low_open, high_open); the proto's Hyperparameters fields.
_NUMBERS: dict[str, tuple[type, float, float, bool, bool]] = {
    "lora_r": (int, 1, MAX_RANK, False, False),
    "lora_alpha": (float, 0.0, MAX_ALPHA, True, False),
    "lora_dropout": (float, 0.0, 1.0, False, True),
    "epochs": (float, 0.0, MAX_EPOCHS, True, False),
    "learning_rate": (float, 0.0, MAX_LEARNING_RATE, True, False),
    "batch_size": (int, 1, MAX_BATCH_SIZE, False, False),
    "gradient_accumulation_steps": (int, 1, MAX_GRAD_ACCUM, False, False),
    "max_length": (int, MIN_MAX_LENGTH, MAX_MAX_LENGTH, False, False),
    "eval_fraction": (float, 0.0, MAX_EVAL_FRACTION, False, True),
    "seed": (int, 0, MAX_SEED, False, False),
    "num_nodes": (int, 1, MAX_NODES, False, False),
    "processes_per_node": (int, 1, MAX_PROCESSES_PER_NODE, False, False),
    "eval_steps": (int, 0, MAX_EVAL_STEPS, False, False),
    "eval_generate_rows": (int, 0, MAX_EVAL_GENERATE_ROWS, False, False),
    "eval_max_new_tokens": (int, 1, MAX_EVAL_NEW_TOKENS, False, False),
    "early_stopping_patience": (int, 0, MAX_PATIENCE, False, False),
    "early_stopping_threshold": (float, 0.0, MAX_THRESHOLD, False, False),
}
_BOOLS = ("packing", "quantize_4bit", "keep_checkpoints", "export_best")
# name: its choices (a string field; "" is unset).
_CHOICES: dict[str, tuple[str, ...]] = {"device": DEVICES, "best_metric": BEST_METRICS, "report_to": REPORT_TO}
HYPERPARAMETERS = (*_NUMBERS, "target_modules", *_BOOLS, *_CHOICES)


def _field(name: str) -> str:
    return f"hyperparameters.{name}"


def check_hyperparameters(values: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters without unset ones, each checked; raises InvalidArgument naming
    `hyperparameters.<name>`. Unknown names are refused: a typo must not pass silently."""
    unknown = sorted(set(values) - set(HYPERPARAMETERS))
    if unknown:
        raise InvalidArgument(
            f"unknown hyperparameter {unknown[0]!r}; known: {', '.join(HYPERPARAMETERS)}.",
            field=_field(unknown[0]),
        )
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or (name == "target_modules" and value == []) or (name in _CHOICES and value == ""):
            continue
        if name in _NUMBERS:
            checked[name] = _number(name, value, *_NUMBERS[name])
        elif name in _BOOLS:
            if not isinstance(value, bool):
                raise InvalidArgument(f"{name} must be true or false.", field=_field(name))
            checked[name] = value
        elif name in _CHOICES:
            if value not in _CHOICES[name]:
                raise InvalidArgument(
                    f"{name} must be one of {', '.join(_CHOICES[name])}, not {value!r}.", field=_field(name)
                )
            checked[name] = value
        else:
            checked[name] = _target_modules(value)
    return checked


def _number(name: str, value: Any, kind: type, low: float, high: float, low_open: bool, high_open: bool):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number.", field=_field(name))
    if kind is int and value != int(value):
        raise InvalidArgument(f"{name} must be a whole number.", field=_field(name))
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InvalidArgument(
            f"{name}={value:g} is out of range: it must be in {interval}.", field=_field(name)
        )
    return kind(value)


def _target_modules(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument(
            "target_modules must be a list of module names.", field=_field("target_modules")
        )
    if len(value) > MAX_TARGET_MODULES:
        raise InvalidArgument(
            f"target_modules lists {len(value)} names; at most {MAX_TARGET_MODULES}.",
            field=_field("target_modules"),
        )
    for item in value:
        if not _MODULE_RE.match(item) or ".." in item:
            raise InvalidArgument(
                f"target_modules entry {item[:80]!r} is not a module name (letters, digits, '_', '.', '-'), "
                "or 'all-linear'.",
                field=_field("target_modules"),
            )
    return list(value)


@dataclass(kw_only=True)
class RunParams:
    """A fine-tuning request, checked. `datasets` are dataset names (the control plane's).

    `eval_datasets` (names too, checked the same way; errors name "eval_datasets"): a separate
    eval split, like OpenAI's validation_file. Given, the run evaluates on exactly their rows and
    holds nothing out of `datasets` (eval_fraction is not used); no name may be in both lists."""

    datasets: list[str]
    base_model: str = DEFAULT_BASE_MODEL
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    adapter_name: str = ""
    merge_full_model: bool = False
    eval_datasets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.datasets:
            raise InvalidArgument("datasets must name at least one dataset.", field="datasets")
        self.datasets = _checked_names(self.datasets, field="datasets")
        self.eval_datasets = _checked_names(self.eval_datasets or [], field="eval_datasets")
        both = [name for name in self.eval_datasets if name in self.datasets]
        if both:
            raise InvalidArgument(
                f"eval_datasets names {both[0]!r}, which is also in datasets: a run must not be evaluated "
                "on rows it trains on.",
                field="eval_datasets",
            )
        if not _MODEL_ID_RE.match(self.base_model) or ".." in self.base_model:
            raise InvalidArgument(
                f"base_model {self.base_model[:200]!r} must look like 'org/name' or 'name' "
                "(letters, digits, '.', '-', '_'; no '..').",
                field="base_model",
            )
        if self.adapter_name:
            validate_name(self.adapter_name, field="adapter_name")
            if len(self.adapter_name) > 100:  # the trainer appends "-v<N>" within 128 characters
                raise InvalidArgument("adapter_name must be at most 100 characters.", field="adapter_name")
        self.hyperparameters = check_hyperparameters(dict(self.hyperparameters))

    def as_json(self) -> dict[str, Any]:
        return {
            "datasets": list(self.datasets),
            "base_model": self.base_model,
            "hyperparameters": dict(self.hyperparameters),
            "adapter_name": self.adapter_name,
            "merge_full_model": self.merge_full_model,
            "eval_datasets": list(self.eval_datasets),
        }


def _checked_names(names: list[str], *, field: str) -> list[str]:
    """Dataset names as a list: at most MAX_DATASETS plain names, none twice."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise InvalidArgument(f"{field} must be a list of dataset names.", field=field)
    if len(names) > MAX_DATASETS:
        raise InvalidArgument(f"{field} may name at most {MAX_DATASETS} datasets.", field=field)
    for name in names:
        validate_name(name, field=field)
    if len(set(names)) != len(names):
        raise InvalidArgument(f"{field} names the same dataset twice.", field=field)
    return list(names)
