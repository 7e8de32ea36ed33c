"""Export a trained adapter to `adapters/<stem>-v<N>`, atomically, with a lineage manifest.

Layout of one export (what vLLM and the serving proxy read):

    adapters/<stem>-v<N>/
        adapter_config.json         peft's config; base_model_name_or_path is the CANONICAL id
        adapter_model.safetensors   the LoRA weights
        tokenizer.json, tokenizer_config.json, chat_template.jinja (chat models), ...
        README.md                   a short card naming the base model
        eval.jsonl                  the eval split, the dataset rows as read (only when the run had
                                    one: held out of its datasets, or its eval datasets' rows); the
                                    serving proxy's batch compare defaults to it
        manifest.json               run id, base model, prompt format, datasets + sha256,
                                    eval_datasets (the eval split's files; [] when held out),
                                    hyperparameters, final metrics, sha256 of every file,
                                    eval_split: {"file", "rows", "sha256"} or null,
                                    evals (every eval during training), best_checkpoint
                                    ({"exported_step", "step", "metric", "value", "why", ...})
        merged/                     only on request: the base model with the adapter merged in

How it is written:
- everything goes into a hidden temp folder inside adapters/ (`.export-*`), on the same
  file system, then one rename publishes it. A reader sees the whole export or nothing;
- the version N is picked, and the rename done, under a lock file (`adapters/.export.lock`),
  so two exports never pick the same name, and an existing folder is never overwritten;
- a failure removes the temp folder; a crash may leave one behind, which
  `remove_stale_exports` deletes (the service calls it on start).
- files are made world-readable (0644, folders 0755): vLLM may run as another user.

Hidden entries (names starting with '.') in adapters/ are never exports.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from synthtune.errors import AlreadyExists
from synthtune.files import StorageFull, fsync_dir, is_no_space, sha256_file
from synthtune.paths import validate_name

logger = logging.getLogger(__name__)

ADAPTERS_DIR = "adapters"
MANIFEST = "manifest.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MERGED_DIR = "merged"
EVAL_SPLIT = "eval.jsonl"
MANIFEST_SCHEMA_VERSION = 1
_LOCK = ".export.lock"
_TMP_PREFIX = ".export-"
_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes")


@dataclass(frozen=True)
class Lineage:
    """What the manifest records about where an adapter came from.

    datasets: [{"path", "sha256", "rows", "format"}] as dataset_prep.DatasetFile reports them.
    eval_datasets: the same for a separate eval split's files; [] when it was held out of datasets.
    hyperparameters: ResolvedConfig.hyperparameters(), plus what training added.
    metrics: final metrics (train_loss, eval_loss, steps, epochs, runtime...).
    evals: every eval of the run, as its "eval" events (step, epoch, eval_loss, ..., is_best).
    best_checkpoint: which step's weights are exported and why (training.best_checkpoint_record).
    """

    run_id: str
    base_model_id: str
    base_model_architecture: str
    prompt_format: str
    datasets: list[dict[str, Any]]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    evals: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoint: dict[str, Any] | None = None
    eval_datasets: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ExportResult:
    name: str
    path: Path
    relative_path: str  # "adapters/<name>", the form that crosses service boundaries
    weights_sha256: str
    manifest: dict[str, Any]


def adapters_dir(data_root: Path) -> Path:
    return Path(data_root) / ADAPTERS_DIR


def next_version_name(folder: Path, stem: str) -> str:
    """`<stem>-v<N>` with N one above the highest existing version of `stem` (v1 when none)."""
    pattern = re.compile(rf"^{re.escape(stem)}-v(\d+)$")
    versions = [int(m.group(1)) for entry in _entries(folder) if (m := pattern.match(entry))]
    return f"{stem}-v{max(versions, default=0) + 1}"


def export_adapter(
    model: Any,
    tokenizer: Any,
    *,
    data_root: Path,
    stem: str,
    lineage: Lineage,
    merge_from: Path | None = None,
    merge_dtype: str = "float32",
    eval_rows: list[dict[str, Any]] | None = None,
) -> ExportResult:
    """Write `model`'s adapter (a peft model), `tokenizer` and the manifest to adapters/<stem>-v<N>.

    merge_from: the base model's folder; when given, also writes merged/ (the base model
    loaded in `merge_dtype` on the CPU, the exported adapter merged in).
    eval_rows: the run's eval split as dataset rows (held out of its datasets, or its eval
    datasets' rows, never trained on); when non-empty they are written to eval.jsonl
    (one JSON object a line, in order) and recorded as the manifest's "eval_split".
    Returns once the folder is published under its final name.
    """
    validate_name(stem, field="adapter_name")
    root = adapters_dir(data_root)
    root.mkdir(parents=True, exist_ok=True)
    with _export_lock(root):
        name = next_version_name(root, stem)
        validate_name(name, field="adapter_name")
        final = root / name
        if final.exists():  # cannot happen under the lock unless someone wrote by hand; never overwrite
            raise AlreadyExists(f"adapter {name!r} already exists.", field="adapter_name")
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{name}-", dir=root))
        try:
            manifest = _write_export(model, tokenizer, tmp, name=name, lineage=lineage,
                                     merge_from=merge_from, merge_dtype=merge_dtype, eval_rows=eval_rows)
            _make_readable(tmp)
            os.rename(tmp, final)
            fsync_dir(root)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_no_space(exc):  # the run's last checkpoint is kept: a resume exports again
                raise StorageFull(f"{ADAPTERS_DIR}/{name}", then="resume the run") from exc
            raise
    logger.info("exported adapter %s", name)
    return ExportResult(name, final, f"{ADAPTERS_DIR}/{name}", manifest["weights_sha256"], manifest)


def read_manifest(data_root: Path, name: str) -> dict[str, Any]:
    """The manifest of adapters/<name>; InvalidArgument for a bad name, FileNotFoundError if absent."""
    validate_name(name, field="adapter_name")
    return json.loads((adapters_dir(data_root) / name / MANIFEST).read_text())


def remove_stale_exports(data_root: Path) -> list[str]:
    """Delete temp folders left by exports that crashed; return their names. Safe while none runs."""
    root = adapters_dir(data_root)
    if not root.is_dir():
        return []
    removed = []
    with _export_lock(root):
        for entry in root.iterdir():
            if entry.name.startswith(_TMP_PREFIX) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
    return removed


def _write_export(model: Any, tokenizer: Any, folder: Path, *, name: str, lineage: Lineage,
                  merge_from: Path | None, merge_dtype: str,
                  eval_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # peft records whatever path the base model was loaded from; vLLM and the proxy need the canonical id.
    for config in model.peft_config.values():
        config.base_model_name_or_path = lineage.base_model_id
    # save_embedding_layers=False: embeddings are never trained here, and "auto" would look the
    # canonical id up as a local path or on the hub.
    model.save_pretrained(folder, save_embedding_layers=False)
    _pin_base_model_id(folder / ADAPTER_CONFIG, lineage.base_model_id)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(_card(name, lineage))
    eval_split = None
    if eval_rows:
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in eval_rows).encode()
        (folder / EVAL_SPLIT).write_bytes(data)
        eval_split = {"file": EVAL_SPLIT, "rows": len(eval_rows), "sha256": hashlib.sha256(data).hexdigest()}
    if merge_from is not None:
        merge_adapter(folder, base_model_path=merge_from, out=folder / MERGED_DIR, dtype=merge_dtype,
                      tokenizer=tokenizer)
    files = {path.relative_to(folder).as_posix(): sha256_file(path)
             for path in sorted(folder.rglob("*")) if path.is_file()}
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "name": name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": lineage.run_id,
        "base_model": {"id": lineage.base_model_id, "architecture": lineage.base_model_architecture},
        "prompt_format": lineage.prompt_format,
        "datasets": lineage.datasets,
        "eval_datasets": lineage.eval_datasets,
        "eval_split": eval_split,
        "hyperparameters": lineage.hyperparameters,
        "metrics": lineage.metrics,
        "evals": lineage.evals,
        "best_checkpoint": lineage.best_checkpoint,
        "weights_sha256": files[ADAPTER_WEIGHTS],
        "files": files,
        "merged_model": MERGED_DIR if merge_from is not None else None,
        "libraries": {lib: _version(lib) for lib in _LIBRARIES},
    }
    data = (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode()
    with (folder / MANIFEST).open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return manifest


def merge_adapter(adapter_dir: Path, *, base_model_path: Path, out: Path, dtype: str, tokenizer: Any) -> None:
    """Save base + adapter merged into one plain model (loaded on the CPU, never quantized)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=getattr(torch, dtype))
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _pin_base_model_id(path: Path, base_model_id: str) -> None:
    config = json.loads(path.read_text())
    if config.get("base_model_name_or_path") != base_model_id:
        config["base_model_name_or_path"] = base_model_id
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _card(name: str, lineage: Lineage) -> str:
    return (
        f"---\nbase_model: {lineage.base_model_id}\nlibrary_name: peft\ntags: [lora, synthtune]\n---\n\n"
        f"# {name}\n\nA LoRA adapter for `{lineage.base_model_id}`, trained by synthtune run "
        f"`{lineage.run_id}` in the `{lineage.prompt_format}` prompt format. "
        "`manifest.json` records its datasets, hyperparameters and metrics.\n"
    )


def _make_readable(folder: Path) -> None:
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


@contextmanager
def _export_lock(root: Path) -> Iterator[None]:
    with (root / _LOCK).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def _entries(folder: Path) -> list[str]:
    try:
        return [entry.name for entry in folder.iterdir() if not entry.name.startswith(".")]
    except FileNotFoundError:
        return []


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None

