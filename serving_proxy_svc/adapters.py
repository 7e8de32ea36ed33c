"""The checks on an exported adapter folder before anything is asked of vLLM.

An adapter is `adapters/<name>/` as trainer_svc.export writes it: the folder
appears whole (it is written under a hidden `.export-*` name and renamed), with
`manifest.json`, `adapter_config.json` and the weights. Its name is versioned
(`<stem>-v<N>`) and never reused for other contents, which is why the proxy
serves every adapter under its folder name.

Nothing here writes to, or deletes from, the data root: deleting a loaded
adapter's folder can crash vLLM later (DESIGN.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from synthtune.errors import FailedPrecondition, InvalidArgument, NotFound
from synthtune.paths import validate_name
from synthtune.prompt_format import PROMPT_FORMATS

MANIFEST = "manifest.json"
ADAPTER_CONFIG = "adapter_config.json"
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TEMP_PREFIX = ".export-"  # trainer_svc.export's temp folders
_VERSIONED = re.compile(r"-v\d+$")


@dataclass(frozen=True)
class Adapter:
    """A finished export, checked. `base_model_id` is the canonical id it was trained on."""

    name: str
    path: Path
    manifest: dict[str, Any]
    prompt_format: str
    base_model_id: str
    rank: int

    def vllm_path(self, vllm_adapter_root: str) -> str:
        """The folder as vLLM sees it (what load sends, and what /v1/models reports as `root`)."""
        return f"{vllm_adapter_root.rstrip('/')}/{self.name}"


def inspect_adapter(adapters_dir: Path, name: str) -> Adapter:
    """Check adapters/<name> is a finished, versioned export and read what serving needs.

    Raises InvalidArgument for a bad name ('..', '/', absolute), NotFound when there is
    no such folder, FailedPrecondition for an export that has not finished or is incomplete.
    """
    if name.startswith(TEMP_PREFIX):
        raise FailedPrecondition(
            f"{name!r} is the temporary folder of an export that has not finished; load the adapter by its "
            "final name once the run has exported it.", field="adapter_name")
    validate_name(name, field="adapter_name")
    folder = adapters_dir / name
    resolved = folder.resolve()
    if resolved.parent != adapters_dir.resolve():
        raise InvalidArgument(f"adapter_name {name!r} points outside adapters/.", field="adapter_name")
    if not resolved.is_dir():
        if any(adapters_dir.glob(f"{TEMP_PREFIX}{name}-*")):
            raise FailedPrecondition(
                f"adapter {name!r} is still being exported (its temporary folder exists, the final one does not "
                "yet); try again when the run has finished.", field="adapter_name")
        raise NotFound(f"no adapter {name!r} under adapters/.", field="adapter_name")
    manifest = _read_json(resolved / MANIFEST, name, missing=(
        f"adapters/{name} is not a finished export: it has no {MANIFEST} (the trainer writes it as the last file "
        "of an export). Export it again, or wait for its run to finish."))
    config = _read_json(resolved / ADAPTER_CONFIG, name, missing=(
        f"adapters/{name} is incomplete: {ADAPTER_CONFIG} is missing."))
    if not any((resolved / weights).is_file() for weights in WEIGHTS):
        raise FailedPrecondition(f"adapters/{name} is incomplete: no {WEIGHTS[0]}.", field="adapter_name")
    listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    missing = sorted(file for file in listed if not (resolved / PurePosixPath(file)).is_file())
    if missing:
        raise FailedPrecondition(f"adapters/{name} is incomplete: its manifest lists {', '.join(missing[:5])}, "
                                 "which are missing.", field="adapter_name")
    if manifest.get("name") != name:
        raise FailedPrecondition(
            f"adapters/{name} holds the manifest of {manifest.get('name')!r}: an export folder must keep the name "
            "it was exported under, since that is the name vLLM serves it by.", field="adapter_name")
    if not _VERSIONED.search(name):
        raise FailedPrecondition(
            f"adapter {name!r} has no version suffix (-v<N>): every load uses a versioned name, as exports are "
            "named, so a name never stands for two different adapters.", field="adapter_name")
    prompt_format = manifest.get("prompt_format")
    if prompt_format not in PROMPT_FORMATS:
        raise FailedPrecondition(f"adapters/{name}/{MANIFEST} records no known prompt_format "
                                 f"({', '.join(PROMPT_FORMATS)}): {prompt_format!r}.", field="adapter_name")
    base = manifest.get("base_model") or {}
    base_id = base.get("id") if isinstance(base, dict) else None
    config_base = config.get("base_model_name_or_path")
    if not base_id or not isinstance(base_id, str):
        raise FailedPrecondition(f"adapters/{name}/{MANIFEST} records no base_model.id.", field="adapter_name")
    if config_base and config_base != base_id:
        raise FailedPrecondition(
            f"adapters/{name} disagrees with itself: the manifest says base model {base_id!r}, "
            f"{ADAPTER_CONFIG} says {config_base!r}.", field="adapter_name")
    return Adapter(name=name, path=resolved, manifest=manifest, prompt_format=prompt_format,
                   base_model_id=base_id, rank=adapter_rank(config, name))


def adapter_rank(config: dict[str, Any], name: str = "") -> int:
    """The largest LoRA rank in a peft adapter_config (r, and any per-module rank_pattern)."""
    ranks = [config.get("r")]
    pattern = config.get("rank_pattern")
    if isinstance(pattern, dict):
        ranks.extend(pattern.values())
    ranks = [r for r in ranks if isinstance(r, int) and not isinstance(r, bool)]
    if not ranks or min(ranks) < 1:
        raise FailedPrecondition(f"adapters/{name}/{ADAPTER_CONFIG} has no valid LoRA rank `r`.",
                                 field="adapter_name")
    return max(ranks)


def eval_split_path(adapter: Adapter) -> Path:
    """The adapter's held-out rows (eval.jsonl), checked against the manifest's sha256."""
    split = adapter.manifest.get("eval_split")
    if not isinstance(split, dict) or not split.get("file"):
        raise FailedPrecondition(
            f"adapter {adapter.name!r} has no held-out eval split (its run had too few rows or eval_fraction 0, "
            "or it was exported before eval splits were recorded): pass dataset_path.", field="dataset_path")
    file = str(split["file"])
    validate_name(file, field="eval_split.file")
    path = adapter.path / file
    if not path.is_file():
        raise FailedPrecondition(f"adapters/{adapter.name}/{file}, its eval split, is missing.", field="dataset_path")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if split.get("sha256") and digest != split["sha256"]:
        raise FailedPrecondition(f"adapters/{adapter.name}/{file} changed after the export (sha256 differs).",
                                 field="dataset_path")
    return path


def adapter_name_for_root(root: str, vllm_adapter_root: str) -> str:
    """The adapters/ folder name behind a /v1/models `root`, or "" when it is not under the adapter root."""
    prefix = vllm_adapter_root.rstrip("/") + "/"
    if not root.startswith(prefix):
        return ""
    name = root[len(prefix):].strip("/")
    if "/" in name:
        return ""
    try:
        return validate_name(name)
    except InvalidArgument:
        return ""


def _read_json(path: Path, name: str, *, missing: str) -> dict[str, Any]:
    if not path.is_file():
        raise FailedPrecondition(missing, field="adapter_name")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FailedPrecondition(f"adapters/{name}/{path.name} is not valid JSON ({exc}).",
                                 field="adapter_name") from None
    if not isinstance(data, dict):
        raise FailedPrecondition(f"adapters/{name}/{path.name} is not a JSON object.", field="adapter_name")
    return data
