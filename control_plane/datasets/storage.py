"""Where dataset files live under the data root, and reading their rows.

The control plane shares the data root with the services (one folder here, one
volume in Kubernetes); every path goes through synthtune.paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from django.conf import settings

from synthtune.paths import resolve_under

DATASETS_DIR = "datasets"
# datasets/<name>.jsonl's row metadata (provenance, judge scores) is datasets/<name>.meta.jsonl,
# one JSON object a row, in the dataset's line order. Written by datagen, carried by versions.
METADATA_STEM = ".meta"


def dataset_relpath(name: str) -> str:
    """The relative path for dataset `name` (already validated), as datagen names it too."""
    return f"{DATASETS_DIR}/{name}.jsonl"


def absolute(relpath: str) -> Path:
    return resolve_under(Path(settings.SYNTHTUNE_DATA_ROOT), relpath, field="path")


def metadata_relpath(relpath: str) -> str:
    """The sidecar of a dataset file: datasets/x.jsonl -> datasets/x.meta.jsonl."""
    return relpath.removesuffix(".jsonl") + METADATA_STEM + ".jsonl"


def partial(path: Path) -> Path:
    """The file datagen appends to while it works; renamed to `path` at the end."""
    return path.with_name(path.name + ".partial")


def name_taken_on_disk(name: str) -> str | None:
    """The relative path of a file already using `name` (final or partial), if any."""
    relpath = dataset_relpath(name)
    path = absolute(relpath)
    for candidate in (path, partial(path)):
        if candidate.exists():
            return str(candidate.relative_to(Path(settings.SYNTHTUNE_DATA_ROOT).resolve()))
    return None


def iter_rows(path: Path) -> Iterator[dict]:
    """Parsed rows of a JSONL file. A line that doesn't parse ends the rows: in a .partial
    file the last line may be half written while datagen appends."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return


def first_rows(path: Path, limit: int) -> list[dict]:
    return list(islice(iter_rows(path), limit))


def iter_metadata(path: Path) -> Iterator[dict | None]:
    """A sidecar's lines in order: each a dict, or None for a line that is blank, not an object
    or (at the end of a .partial file) half written. Blank lines count: line i is row i."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                value = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                value = None
            yield value if isinstance(value, dict) else None
