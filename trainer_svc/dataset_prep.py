"""Datasets for a run: load and check the JSONL files, convert rows, split, and report.

`prepare_data` is what runs before a run is queued (and again in the child, which
trains on exactly what it reports):
- each path must be a `.jsonl` file under `<data_root>/datasets/` (no '..', no
  absolute path, no symlink out of the root), exist, and hold at least one row;
  every line must be a valid record (synthtune.records), or the error lists the bad
  lines;
- rows become trl examples through synthtune.prompt_format.training_example, in
  the format the tokenizer dictates ("chat" with a chat template, else "instruction");
- a seeded, deterministic held-out split (`split_rows`), or, when the run names
  eval datasets, exactly their rows as the eval split (checked, converted and measured as
  the training rows are; errors name `eval_datasets`) and nothing held out;
- a `DataReport`: rows, formats, token lengths against max_length, and how many rows
  would be truncated (their end, and so the end token, cut off) or dropped (the
  prompt alone fills max_length, so no answer token is left to learn).

Token lengths are counted the way trl 1.16 tokenizes: the chat template with its
`{% generation %}` mask for chat rows; `tokenizer(prompt + completion + eos)` for
instruction rows.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from synthtune.errors import FailedPrecondition, InvalidArgument
from synthtune.paths import resolve_under
from synthtune.prompt_format import PromptFormat, format_for_tokenizer, training_example
from synthtune.records import row_format
from trainer_svc.hyperparams import MIN_ROWS_FOR_EVAL
from trainer_svc.training_templates import known_training_template, renders_like

DATASETS_DIR = "datasets"
SUFFIX = ".jsonl"
_REPORTED_LINE_ERRORS = 5


@dataclass(frozen=True)
class DatasetFile:
    """One dataset file as read: its path relative to the data root, and what it held."""

    path: str
    sha256: str
    rows: int
    format: str  # "instruction", "chat" or "mixed"
    size_bytes: int
    # The dataset version the caller named for this file (check_versions); "" and 0 when none.
    name: str = ""
    version: int = 0


@dataclass(frozen=True)
class LengthStats:
    min: int
    mean: float
    p50: int
    p95: int
    max: int


@dataclass(frozen=True)
class DataReport:
    """What a run would train on. `rows` counts every row read (eval datasets' too), and
    `truncated_rows` (which includes `dropped_rows`) is over them all. `eval_datasets`: the
    files of a separate eval split; empty when the eval rows are held out of `datasets`."""

    prompt_format: PromptFormat
    datasets: tuple[DatasetFile, ...]
    rows: int
    train_rows: int
    eval_rows: int
    max_length: int
    token_lengths: LengthStats
    truncated_rows: int
    dropped_rows: int
    warnings: tuple[str, ...] = ()
    eval_datasets: tuple[DatasetFile, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["datasets"] = [asdict(d) for d in self.datasets]
        data["eval_datasets"] = [asdict(d) for d in self.eval_datasets]
        data["warnings"] = list(self.warnings)
        return data


@dataclass
class PreparedData:
    report: DataReport
    train: list[dict] = field(default_factory=list)  # trl examples: {"messages"} or {"prompt","completion"}
    eval: list[dict] = field(default_factory=list)
    # The dataset rows behind `eval`, as read (same order): the export writes them as eval.jsonl
    # so comparisons run on exactly the rows training never saw.
    eval_rows: list[dict] = field(default_factory=list)
    # The marked template to train chat rows with, when the tokenizer's own has no
    # {% generation %} markers (training_chat_template); None: the tokenizer's own.
    chat_template: str | None = None


def dataset_path(data_root: Path, relative: str, *, field: str = "datasets") -> Path:
    """The file behind `relative`, checked: under datasets/, a .jsonl file that exists.
    Errors name `field` (the request's list the path came from)."""
    path = resolve_under(data_root, relative, field=field)
    datasets_dir = (data_root.resolve() / DATASETS_DIR)
    if datasets_dir not in path.parents:
        raise InvalidArgument(
            f"dataset {relative!r} must be a file under {DATASETS_DIR}/, such as '{DATASETS_DIR}/faq{SUFFIX}'.",
            field=field,
        )
    if path.suffix != SUFFIX:
        raise InvalidArgument(f"dataset {relative!r} must be a {SUFFIX} file.", field=field)
    if not path.is_file():
        raise InvalidArgument(f"dataset {relative!r} does not exist.", field=field,
                              extra={"reason": "unknown_dataset"})
    return path


def load_dataset_file(data_root: Path, relative: str, *, field: str = "datasets") -> tuple[DatasetFile, list[dict]]:
    """Read one dataset: every line validated, rows parsed, sha256 of the bytes read."""
    path = dataset_path(data_root, relative, field=field)
    data = path.read_bytes()
    rows: list[dict] = []
    formats: set[str] = set()
    errors: list[str] = []
    error_count = 0
    for number, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
            formats.add(row_format(row))
            rows.append(row)
        except json.JSONDecodeError as exc:
            error_count += 1
            errors.append(f"line {number}: not valid JSON ({exc.msg})")
        except ValueError as exc:
            error_count += 1
            errors.append(f"line {number}: {exc}")
    if error_count:
        raise InvalidArgument(
            f"dataset {relative!r} has {error_count} bad line(s): {'; '.join(errors[:_REPORTED_LINE_ERRORS])}",
            field=field,
            extra={"dataset": relative, "errors": errors[:20]},
        )
    if not rows:
        raise InvalidArgument(f"dataset {relative!r} is empty: it holds no rows.", field=field,
                              extra={"reason": "empty_dataset"})
    fmt = next(iter(formats)) if len(formats) == 1 else "mixed"
    info = DatasetFile(relative, hashlib.sha256(data).hexdigest(), len(rows), fmt, len(data))
    return info, rows


def check_versions(files: tuple[DatasetFile, ...], refs: list[dict[str, Any]], *,
                   field: str = "dataset_refs") -> tuple[DatasetFile, ...]:
    """The files named by the versions the caller meant (`refs`, in the same order: RunConfig
    checked that). FailedPrecondition naming `field` when a file's bytes are no longer that
    version's: a run trains (and evaluates) on exactly what it was asked to, or not at all."""
    if not refs:
        return files
    named = []
    for info, ref in zip(files, refs, strict=True):
        if info.sha256 != ref["sha256"]:
            raise FailedPrecondition(
                f"dataset {ref['name']!r} version {ref['version']} ({info.path}) has changed: its sha256 is "
                f"{info.sha256}, the version's is {ref['sha256']}. Dataset versions are immutable; restore "
                "the file, or train on a version that matches it.",
                field=field,
                extra={"dataset": ref["name"], "version": ref["version"], "path": info.path},
            )
        named.append(replace(info, name=ref["name"], version=ref["version"]))
    return tuple(named)


def split_rows(rows: list, eval_fraction: float, seed: int) -> tuple[list, list]:
    """(train, eval): a seeded shuffle picks the eval rows; both keep the file order.

    No eval rows when eval_fraction is 0 or there are fewer than MIN_ROWS_FOR_EVAL rows;
    otherwise round(n * eval_fraction) rows, at least 1.
    """
    n = len(rows)
    if eval_fraction <= 0 or n < MIN_ROWS_FOR_EVAL:
        return list(rows), []
    n_eval = max(1, round(n * eval_fraction))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held_out = set(order[:n_eval])
    train = [row for i, row in enumerate(rows) if i not in held_out]
    evaluation = [row for i, row in enumerate(rows) if i in held_out]
    return train, evaluation


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def training_chat_template(tokenizer: Any) -> str | None:
    """The template trl will train chat rows with (None: the tokenizer's own), checked to train the end token.

    A template without `{% generation %}` markers is swapped for a training version that
    renders the same text: ours first (trainer_svc.training_templates: SmolLM2's ChatML),
    then trl's (Phi-3's own, for one). Anything else cannot give assistant-only loss, and a
    template whose end-of-turn token falls outside the mask would train a model that
    never stops: both are refused.
    """
    from trl.chat_template_utils import (
        get_training_chat_template,
        has_generation_markers,
        is_chat_template_stop_token_trained,
    )

    template = None
    if not has_generation_markers(tokenizer.chat_template):
        template = known_training_template(tokenizer.chat_template)
        if template is not None and not renders_like(tokenizer, template):
            raise InvalidArgument(
                "the training version of the base model's chat template renders differently from the "
                "template itself, so training would not match serving; this is a bug in synthtune.",
                field="base_model_id",
            )
        if template is None:
            try:
                template = get_training_chat_template(tokenizer)
            except ValueError as exc:
                raise InvalidArgument(
                    "the base model's chat template has no {% generation %} markers and neither synthtune nor "
                    f"trl has a training version of it, so assistant-only loss is impossible ({exc})",
                    field="base_model_id",
                ) from exc
    if not is_chat_template_stop_token_trained(tokenizer, chat_template=template):
        raise InvalidArgument(
            "the base model's chat template leaves the assistant's end-of-turn token out of the loss mask: "
            "a model trained with it would not learn to stop.",
            field="base_model_id",
        )
    return template


def prepare_data(
    data_root: Path,
    datasets: list[str],
    tokenizer: Any,
    *,
    max_length: int,
    eval_fraction: float,
    seed: int,
    eval_datasets: list[str] | None = None,
) -> PreparedData:
    """Load, convert, split and measure; raise InvalidArgument for anything a run cannot train on.

    With `eval_datasets` the eval split is their rows (those trl would drop left out, as for
    training) and every training row trains: eval_fraction is not used."""
    fmt = format_for_tokenizer(tokenizer)
    chat_template = training_chat_template(tokenizer) if fmt == "chat" else None
    if fmt == "instruction" and not tokenizer.eos_token:
        raise InvalidArgument("the base model's tokenizer has no eos token to end answers with.",
                              field="base_model_id")
    files, examples, sources = _read(data_root, datasets, fmt, field="datasets")
    eval_files, eval_examples, eval_sources = _read(data_root, eval_datasets or [], fmt, field="eval_datasets")
    lengths, dropped = [], []
    for example in examples + eval_examples:
        total, answer_starts_at = _token_lengths(tokenizer, example, fmt, chat_template)
        lengths.append(total)
        dropped.append(answer_starts_at >= max_length)
    truncated = sum(length > max_length for length in lengths)
    dropped_count = sum(dropped)
    n_train = len(examples)
    if all(dropped[:n_train]):
        raise InvalidArgument(
            f"max_length={max_length} is too short for every row: each prompt alone fills it, so no answer "
            f"token is left to learn (the shortest row has {min(lengths[:n_train])} tokens).",
            field="max_length",
        )
    if eval_examples and all(dropped[n_train:]):
        raise InvalidArgument(
            f"max_length={max_length} is too short for every row of eval_datasets: each prompt alone fills it, "
            f"so no answer token is left to evaluate (the shortest has {min(lengths[n_train:])} tokens).",
            field="max_length",
        )
    # Rows trl would drop are left out here, so the report's counts are what trains.
    kept = [(example, row) for example, row, gone in zip(examples, sources, dropped) if not gone]
    if eval_examples:
        train_pairs = kept
        eval_pairs = [(example, row) for example, row, gone in zip(eval_examples, eval_sources, dropped[n_train:])
                      if not gone]
    else:
        train_pairs, eval_pairs = split_rows(kept, eval_fraction, seed)
    train = [example for example, _ in train_pairs]
    evaluation = [example for example, _ in eval_pairs]
    warnings = []
    if truncated:
        warnings.append(
            f"{truncated} of {len(lengths)} rows are longer than max_length={max_length} tokens and will be "
            "cut from the end, end token included (longest: "
            f"{max(lengths)} tokens); raise max_length or shorten them."
        )
    if dropped_count:
        warnings.append(f"{dropped_count} rows are left out: their prompt alone fills max_length={max_length}.")
    if eval_fraction > 0 and not evaluation:
        warnings.append(
            f"no held-out eval split: {len(kept)} rows, fewer than the {MIN_ROWS_FOR_EVAL} an eval split needs."
        )
    report = DataReport(
        prompt_format=fmt,
        datasets=tuple(files),
        rows=len(lengths),
        train_rows=len(train),
        eval_rows=len(evaluation),
        max_length=max_length,
        token_lengths=_stats(lengths),
        truncated_rows=truncated,
        dropped_rows=dropped_count,
        warnings=tuple(warnings),
        eval_datasets=tuple(eval_files),
    )
    return PreparedData(report, train, evaluation, [row for _, row in eval_pairs], chat_template)


def _read(data_root: Path, paths: list[str], fmt: PromptFormat, *,
          field: str) -> tuple[list[DatasetFile], list[dict], list[dict]]:
    """(files, trl examples, the rows behind them) of `paths`, in order; errors name `field`."""
    files: list[DatasetFile] = []
    examples: list[dict] = []
    sources: list[dict] = []
    for relative in paths:
        info, rows = load_dataset_file(data_root, relative, field=field)
        files.append(info)
        examples.extend(training_example(row, fmt) for row in rows)
        sources.extend(rows)
    return files, examples, sources


def _token_lengths(tokenizer: Any, example: dict, fmt: str, chat_template: str | None) -> tuple[int, int]:
    """(tokens of the whole row, index of its first loss token)."""
    if fmt == "chat":
        out = tokenizer.apply_chat_template(
            example["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
            chat_template=chat_template,
        )
        mask = out["assistant_masks"]
        return len(out["input_ids"]), (mask.index(1) if 1 in mask else len(mask))
    prompt_ids = tokenizer(example["prompt"])["input_ids"]
    full_ids = tokenizer(example["prompt"] + example["completion"] + tokenizer.eos_token)["input_ids"]
    return len(full_ids), len(prompt_ids)


def _stats(lengths: list[int]) -> LengthStats:
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return LengthStats(ordered[0], round(statistics.fmean(ordered), 1), int(statistics.median_low(ordered)),
                       p95, ordered[-1])
