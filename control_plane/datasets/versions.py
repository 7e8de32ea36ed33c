"""Dataset versions and lineage: services (merge, edit, the fields of a new child) and
selectors (resolve a version, lineage, diff, row metadata).

A version is a Dataset row with one immutable JSONL file. Nothing here rewrites a file
or a row: every transformation writes a new file under a new name and records a new
row naming its parent and the operation with its parameters. A root (generated or
uploaded) is version 1 of its own family; a child's default name is "<family>.v<N>".

Versions are named "name" or "name@N" (version N of the family `name` belongs to);
dataset names never contain '@'.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path
from typing import Any, BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max

from control_plane.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from control_plane.datasets import storage
from control_plane.datasets.models import Dataset
from control_plane.datasets.services import _ensure_name_free, jsonl_validate
from synthtune import records
from synthtune.files import StorageFull, fsync_dir, is_no_space
from synthtune.paths import validate_name

logger = logging.getLogger(__name__)

OPERATIONS = ("generate", "upload", "curate", "merge", "edit")
DIFF_EXAMPLES = 5
DIFF_MAX_EXAMPLES = 50
_MAX_DEPTH = 10_000  # a parent chain longer than this is a cycle someone wrote by hand
_CREATE_ATTEMPTS = 3  # two children of one family made at once race for the next version


# --- selectors ------------------------------------------------------------------------------


def dataset_version_get(*, ref: str, version: int | None = None, field: str = "parent") -> Dataset:
    """The dataset a caller names as an input: "name", "name@N", or name plus `version`
    (version N of name's family). Raises NotFound (404) naming `field` when there is none: the
    request is well formed, what it names is missing (the OpenAPI contract keeps 400 for input
    the schema refuses); InvalidArgument for a malformed "@N"."""
    name, _, at = ref.partition("@")
    if at:
        if version is not None:
            raise InvalidArgument(f"Give the version either as {ref!r} or as version, not both.", field=field)
        if not at.isdigit() or int(at) < 1:
            raise InvalidArgument(f"{ref!r}: the version after '@' must be a number from 1.", field=field)
        version = int(at)
    named = Dataset.objects.select_related("owner", "parent").filter(name=name).first()
    if named is None:
        raise NotFound(
            f"No dataset named {name!r}; GET /api/v1/datasets/ (or `synthtune datasets list`) lists them.",
            field=field,
        )
    if version is None or version == named.version:
        return named
    found = (
        Dataset.objects.select_related("owner", "parent").filter(family=named.family, version=version).first()
    )
    if found is None:
        versions = list(
            Dataset.objects.filter(family=named.family).order_by("version").values_list("version", flat=True)
        )
        raise NotFound(
            f"Dataset family {named.family!r} has no version {version}; its versions are "
            f"{', '.join(map(str, versions))} (GET /api/v1/datasets/{name}/lineage/).",
            field=field,
            extra={"family": named.family, "versions": versions},
        )
    return found


@dataclass(frozen=True)
class Lineage:
    """Where a version comes from and what was made from it.

    ancestors: root first, ending with the parent (empty for a root).
    children: versions whose parent is this one, oldest first.
    inputs: for a merge, every source as recorded ({"name", "version", "sha256"}), with
    "dataset" the row when it still exists."""

    dataset: Dataset
    ancestors: list[Dataset]
    children: list[Dataset]
    inputs: list[dict[str, Any]] = field(default_factory=list)


def dataset_lineage(*, dataset: Dataset) -> Lineage:
    ancestors: list[Dataset] = []
    seen = {dataset.pk}
    current = dataset
    while current.parent_id is not None and len(ancestors) < _MAX_DEPTH:
        current = Dataset.objects.select_related("owner").get(pk=current.parent_id)
        if current.pk in seen:
            break
        seen.add(current.pk)
        ancestors.append(current)
    ancestors.reverse()
    children = list(dataset.children.select_related("owner").order_by("version", "id"))
    inputs = []
    for entry in dataset.operation.get("inputs", []) if isinstance(dataset.operation, dict) else []:
        row = Dataset.objects.filter(name=entry.get("name")).first()
        inputs.append({**entry, "dataset": row})
    return Lineage(dataset=dataset, ancestors=ancestors, children=children, inputs=inputs)


def metadata_path(dataset: Dataset) -> Path | None:
    """The sidecar that goes with the dataset's current file (final, else .partial), if any."""
    path = storage.absolute(dataset.path)
    meta = storage.absolute(storage.metadata_relpath(dataset.path))
    if path.exists():
        return meta if meta.is_file() else None
    if storage.partial(path).exists() and storage.partial(meta).is_file():
        return storage.partial(meta)
    return None


def row_metadata(dataset: Dataset) -> Iterator[dict | None]:
    """Each row's metadata line (datasets/<name>.meta.jsonl, written by datagen), in row order:
    a dict, or None for a row without one. Yields nothing when the dataset has no sidecar;
    zip it with the rows through `padded` when both must line up."""
    path = metadata_path(dataset)
    if path is not None:
        yield from storage.iter_metadata(path)


def padded(metadata: Iterable[dict | None]) -> Iterator[dict | None]:
    """`metadata`, then None for ever: rows past the sidecar's end have none."""
    return chain(metadata, repeat(None))


def rows_with_metadata(rows: Iterable[dict], dataset: Dataset) -> list[dict]:
    """Rows (already read, in file order from the first) with a "metadata" key each when the
    dataset has a sidecar; unchanged otherwise."""
    if metadata_path(dataset) is None:
        return list(rows)
    return [{**row, "metadata": meta} for row, meta in zip(rows, padded(row_metadata(dataset)))]


def dataset_export_with_metadata(*, dataset: Dataset, fmt: str | None) -> Iterator[bytes]:
    """The dataset's rows as JSONL, each with a "metadata" key (null without a sidecar line):
    e.g. to export judge scores. Same refusals as selectors.dataset_export."""
    from control_plane.datasets import selectors

    selectors.dataset_export(dataset=dataset, fmt=fmt)  # its checks: format, ready, file present
    path = storage.absolute(dataset.path)
    meta = padded(row_metadata(dataset))
    for row in storage.iter_rows(path):
        out = records.convert(row, fmt) if fmt else row
        yield (json.dumps({**out, "metadata": next(meta)}, ensure_ascii=False) + "\n").encode("utf-8")


# --- diff -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffReport:
    """How `new` differs from `old`, rows keyed by their normalised instruction (chat rows:
    the first user message). Same key, other content (output, system, messages): changed.
    A key held by several rows is matched as a multiset."""

    old: dict[str, Any]
    new: dict[str, Any]
    added: int
    removed: int
    changed: int
    unchanged: int
    examples: dict[str, list[Any]]  # added: [row], removed: [row], changed: [{"old", "new"}]

    def as_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "examples": self.examples,
        }


def row_key(row: dict) -> str:
    """The normalised instruction a diff matches rows by: case and runs of white space ignored."""
    if "messages" in row:
        text = next((m.get("content", "") for m in row["messages"] if m.get("role") == "user"), "")
    else:
        text = str(row.get("instruction", ""))
        if row.get("input"):
            text += "\n" + str(row["input"])
    return " ".join(str(text).split()).casefold()


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _canonical(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _index(path: Path) -> dict[bytes, list[tuple[bytes, int]]]:
    """key digest -> [(content digest, row index)], streaming the file (no rows kept)."""
    index: dict[bytes, list[tuple[bytes, int]]] = {}
    for i, row in enumerate(storage.iter_rows(path)):
        index.setdefault(_digest(row_key(row)), []).append((_digest(_canonical(row)), i))
    return index


def _rows_at(path: Path, wanted: set[int]) -> dict[int, dict]:
    found: dict[int, dict] = {}
    if not wanted:
        return found
    last = max(wanted)
    for i, row in enumerate(storage.iter_rows(path)):
        if i in wanted:
            found[i] = row
        if i >= last:
            break
    return found


def _readable(dataset: Dataset) -> Path:
    path = storage.absolute(dataset.path)
    if not path.is_file():
        raise FailedPrecondition(
            f"Dataset {dataset.name!r} has no file to compare yet ({dataset.status}; {dataset.path}).",
            field="against",
        )
    return path


def dataset_diff(*, old: Dataset, new: Dataset, examples: int = DIFF_EXAMPLES) -> DiffReport:
    """Rows added, removed and changed from `old` to `new` (any two datasets), with counts and
    the first `examples` of each. Reads each file twice, keeping only digests in memory."""
    examples = max(0, min(examples, DIFF_MAX_EXAMPLES))
    old_path, new_path = _readable(old), _readable(new)
    old_index, new_index = _index(old_path), _index(new_path)
    added: list[int] = []
    removed: list[int] = []
    changed: list[tuple[int, int]] = []
    unchanged = 0
    for key in old_index.keys() | new_index.keys():
        before, after = old_index.get(key, []), new_index.get(key, [])
        same = Counter(d for d, _ in before) & Counter(d for d, _ in after)
        unchanged += sum(same.values())
        left_old, left_new = _minus(before, same), _minus(after, same)
        pairs = min(len(left_old), len(left_new))
        changed += zip(left_old[:pairs], left_new[:pairs])
        removed += left_old[pairs:]
        added += left_new[pairs:]
    added.sort()
    removed.sort()
    changed.sort(key=lambda pair: pair[1])
    shown_added, shown_removed, shown_changed = added[:examples], removed[:examples], changed[:examples]
    old_rows = _rows_at(old_path, set(shown_removed) | {o for o, _ in shown_changed})
    new_rows = _rows_at(new_path, set(shown_added) | {n for _, n in shown_changed})
    return DiffReport(
        old=_ref(old),
        new=_ref(new),
        added=len(added),
        removed=len(removed),
        changed=len(changed),
        unchanged=unchanged,
        examples={
            "added": [new_rows[i] for i in shown_added],
            "removed": [old_rows[i] for i in shown_removed],
            "changed": [{"old": old_rows[o], "new": new_rows[n]} for o, n in shown_changed],
        },
    )


def _minus(entries: list[tuple[bytes, int]], same: Counter) -> list[int]:
    """Row indexes of `entries` left once `same` (digest -> count) is taken out, in order."""
    budget = Counter(same)
    left = []
    for digest, index in entries:
        if budget[digest]:
            budget[digest] -= 1
        else:
            left.append(index)
    return left


def _ref(dataset: Dataset) -> dict[str, Any]:
    return {**dataset.ref, "family": dataset.family, "rows": dataset.rows}


# --- services ---------------------------------------------------------------------------------


def _require_ready(dataset: Dataset, *, field: str) -> None:
    if dataset.status != Dataset.Status.READY:
        raise InvalidArgument(
            f"Dataset {dataset.name!r} is {dataset.status}; only a ready dataset can have new versions "
            "made from it (wait for its job to finish, or resume it).",
            field=field,
        )


def _next_version(family: str) -> int:
    highest = Dataset.objects.filter(family=family).aggregate(top=Max("version"))["top"]
    return (highest or 0) + 1


_MAX_NAME_CHARS = 128  # synthtune.paths.validate_name


def version_default_name(*, parent: Dataset) -> str:
    """The name a new version of `parent` gets unless the caller names it: "<family>.v<N>"
    ("<family>v<N>" after a family ending in "."; a name never has ".."), the family cut short
    where the whole would pass 128 characters."""
    suffix = f"v{_next_version(parent.family)}"
    family = parent.family[: _MAX_NAME_CHARS - len(suffix) - 1]
    return f"{family}{'' if family.endswith('.') else '.'}{suffix}"


def version_child_fields(*, parent: Dataset, op: str, params: dict[str, Any]) -> dict[str, Any]:
    """The lineage fields of a new version made from `parent` by `op` with `params`:
    {"family", "version", "parent", "operation"}, for Dataset.objects.create(**fields, ...).

    Call it inside the transaction that creates the row; two children made at once may get the
    same version, and the (family, version) constraint then refuses the second (IntegrityError:
    call again). Raises InvalidArgument (field "parent") for a parent that is not ready."""
    if op not in OPERATIONS or op in ("generate", "upload"):
        raise ValueError(f"not an operation that makes a child version: {op!r}")
    _require_ready(parent, field="parent")
    return {
        "family": parent.family,
        "version": _next_version(parent.family),
        "parent": parent,
        "operation": {"op": op, "params": dict(params)},
    }


@dataclass
class _Written:
    """A new version's file (and sidecar) written to hidden temp files in datasets/."""

    data: Path
    meta: Path | None
    rows: int
    formats: set[str]
    sha256: str
    size_bytes: int

    def discard(self) -> None:
        self.data.unlink(missing_ok=True)
        if self.meta:
            self.meta.unlink(missing_ok=True)


class _Writer:
    """Writes rows (and, when asked, their metadata lines) to temp files, hashing as it goes."""

    def __init__(self, *, with_metadata: bool):
        self._stack = ExitStack()
        self.data_path = self.meta_path = None
        self.data = self.meta = None
        self.digest = hashlib.sha256()
        self.rows = self.size = 0
        self.formats: set[str] = set()
        try:
            with _no_space_is_storage_full():
                folder = storage.absolute(storage.DATASETS_DIR)
                folder.mkdir(parents=True, exist_ok=True)
                self.data_path, self.data = self._temp(folder)
                if with_metadata:
                    self.meta_path, self.meta = self._temp(folder)
        except BaseException:
            self.abort()
            raise

    def _temp(self, folder: Path) -> tuple[Path, BinaryIO]:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".version-", suffix=".tmp")
        return Path(name), self._stack.enter_context(os.fdopen(fd, "wb"))

    def write(self, line: str, row: dict, meta: dict | None) -> None:
        with _no_space_is_storage_full():
            self._write(line, row, meta)

    def _write(self, line: str, row: dict, meta: dict | None) -> None:
        data = (line.rstrip("\r\n") + "\n").encode("utf-8")
        self.data.write(data)
        self.digest.update(data)
        self.size += len(data)
        self.rows += 1
        self.formats.add(records.row_format(row))
        if self.meta is not None:
            self.meta.write((json.dumps(meta, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> _Written:
        try:
            with _no_space_is_storage_full():
                for handle in (self.data, self.meta):
                    if handle is not None:
                        handle.flush()
                        os.fsync(handle.fileno())
                self._stack.close()
        except BaseException:
            self.abort()
            raise
        return _Written(
            self.data_path, self.meta_path, self.rows, self.formats, self.digest.hexdigest(), self.size
        )

    def abort(self) -> None:
        with suppress(OSError):  # closing flushes, which fails again on a full disk
            self._stack.close()
        for path in (self.data_path, self.meta_path):
            if path is not None:
                path.unlink(missing_ok=True)


@contextmanager
def _no_space_is_storage_full() -> Iterator[None]:
    """A full disk while a version is written is StorageFull (507, saying what to do), not a bare
    OSError (a 500)."""
    try:
        yield
    except OSError as exc:
        if is_no_space(exc) and not isinstance(exc, StorageFull):
            raise StorageFull("a new version in datasets/") from exc
        raise


def _format_of(formats: set[str]) -> str:
    return next(iter(formats)) if len(formats) == 1 else Dataset.Format.MIXED


def _publish(path: Path, temp: Path) -> None:
    """Give `temp` its final name without ever replacing a file (a link fails if one exists)."""
    try:
        with _no_space_is_storage_full():  # a new directory entry may need a block
            os.link(temp, path)
    except FileExistsError:
        raise AlreadyExists(
            f"{path.name} already exists in the data root; pick another name.", field="name"
        ) from None
    temp.unlink()
    fsync_dir(path.parent)


def _create_version(
    *,
    owner: AbstractBaseUser | None,
    name: str | None,
    parent: Dataset,
    op: str,
    params: dict[str, Any],
    extra: dict[str, Any],
    written: _Written,
    source: str,
) -> Dataset:
    """Record the new version and publish its files, atomically: the row and both files, or
    nothing. A default name follows the version picked inside the transaction."""
    try:
        for attempt in range(_CREATE_ATTEMPTS):
            chosen = name or version_default_name(parent=parent)
            validate_name(chosen, field="name")
            _ensure_name_free(chosen)
            relpath = storage.dataset_relpath(chosen)
            path, meta = storage.absolute(relpath), storage.absolute(storage.metadata_relpath(relpath))
            published: list[Path] = []
            try:
                with transaction.atomic():
                    fields = version_child_fields(parent=parent, op=op, params=params)
                    fields["operation"].update(extra)
                    dataset = Dataset.objects.create(
                        name=chosen,
                        path=relpath,
                        rows=written.rows,
                        sha256=written.sha256,
                        size_bytes=written.size_bytes,
                        format=_format_of(written.formats),
                        source=source,
                        status=Dataset.Status.READY,
                        owner=owner,
                        **fields,
                    )
                    if written.meta is not None:  # the metadata first: the dataset file is the commit point
                        _publish(meta, written.meta)
                        published.append(meta)
                    _publish(path, written.data)
                    published.append(path)
            except IntegrityError:
                for done in published:
                    done.unlink(missing_ok=True)
                if Dataset.objects.filter(name=chosen).exists():
                    if name:
                        raise AlreadyExists(
                            f"A dataset named {chosen!r} already exists; pick another name.", field="name"
                        ) from None
                    continue  # another version took the default name: pick the next one
                if attempt + 1 < _CREATE_ATTEMPTS:
                    continue  # another version of the family took the number
                raise
            except BaseException:
                for done in published:
                    done.unlink(missing_ok=True)
                raise
            else:
                return dataset
        raise AlreadyExists(
            f"Could not pick a free version name in family {parent.family!r}; give a name.", field="name"
        )
    finally:
        written.discard()


def _source_lines(dataset: Dataset, *, field: str) -> Iterator[tuple[str, dict]]:
    """(line, parsed row) of a ready version's file, checking the bytes are still the ones
    recorded: a version is exact, and a file changed behind our back is not it any more."""
    path = storage.absolute(dataset.path)
    if not path.is_file():
        raise FailedPrecondition(
            f"The file {dataset.path} of dataset {dataset.name!r} is missing.", field=field
        )
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            digest.update(raw)
            text = raw.decode("utf-8")
            if not text.strip():
                continue
            try:
                yield text, json.loads(text)
            except json.JSONDecodeError:
                raise FailedPrecondition(
                    f"{dataset.path} line {number} is not valid JSON; the file no longer matches "
                    f"dataset {dataset.name!r}.",
                    field=field,
                ) from None
    if dataset.sha256 and digest.hexdigest() != dataset.sha256:
        raise FailedPrecondition(
            f"{dataset.path} changed on disk: its sha256 is {digest.hexdigest()}, dataset "
            f"{dataset.name!r} (version {dataset.version}) recorded {dataset.sha256}. Versions are "
            "immutable; restore the file or upload it as a new dataset.",
            field=field,
        )


def dataset_merge(
    *, owner: AbstractBaseUser | None, name: str | None, sources: list[Dataset], dedupe: bool = True
) -> Dataset:
    """A new version whose parent is the first source: the rows of every source in order, exact
    duplicates (same JSON) dropped when `dedupe`. Its format is the sources' one, or mixed. The
    sources' row metadata comes along when any has a sidecar. Refuses fewer than two sources,
    repeats and unready ones (InvalidArgument, field "sources")."""
    if len(sources) < 2:
        raise InvalidArgument("A merge needs at least two source datasets.", field="sources")
    if len({source.pk for source in sources}) != len(sources):
        raise InvalidArgument("A source is listed twice; list each dataset once.", field="sources")
    for source in sources:
        _require_ready(source, field="sources")
    if name is not None:
        validate_name(name, field="name")
        _ensure_name_free(name)
    with_metadata = any(metadata_path(source) is not None for source in sources)
    writer = _Writer(with_metadata=with_metadata)
    seen: set[bytes] = set()
    dropped = 0
    try:
        for source in sources:
            meta = padded(row_metadata(source))
            for line, row in _source_lines(source, field="sources"):
                row_meta = next(meta)
                if dedupe:
                    digest = _digest(_canonical(row))
                    if digest in seen:
                        dropped += 1
                        continue
                    seen.add(digest)
                writer.write(line, row, row_meta)
    except BaseException:
        writer.abort()
        raise
    written = writer.close()
    if written.rows == 0:
        written.discard()
        raise InvalidArgument("The sources hold no rows to merge.", field="sources")
    dataset = _create_version(
        owner=owner,
        name=name,
        parent=sources[0],
        op="merge",
        params={"dedupe": dedupe},
        extra={"inputs": [source.ref for source in sources], "dropped_duplicates": dropped},
        written=written,
        source=sources[0].source,
    )
    logger.info("datasets merged", extra={"dataset": dataset.name, "rows": dataset.rows, "dropped": dropped})
    return dataset


def dataset_edit(
    *, owner: AbstractBaseUser | None, parent: Dataset, name: str | None, data: bytes
) -> Dataset:
    """A new version of `parent` from a new JSONL body (validated like an upload: bad lines
    by number, field "file"). Rows kept unchanged from the parent keep its row metadata."""
    _require_ready(parent, field="parent")
    if name is not None:
        validate_name(name, field="name")
        _ensure_name_free(name)
    content, report = jsonl_validate(data=data)
    carried: dict[bytes, dict | None] = {}  # the parent's rows -> their metadata
    has_metadata = metadata_path(parent) is not None
    for (_, row), meta in zip(_source_lines(parent, field="parent"), padded(row_metadata(parent))):
        carried.setdefault(_digest(_canonical(row)), meta)
    writer = _Writer(with_metadata=has_metadata)
    kept = 0
    try:
        for line in content.decode("utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            digest = _digest(_canonical(row))
            kept += digest in carried
            writer.write(line, row, carried.get(digest))
    except BaseException:
        writer.abort()
        raise
    written = writer.close()
    dataset = _create_version(
        owner=owner,
        name=name,
        parent=parent,
        op="edit",
        params={"rows": report.rows, "kept_from_parent": kept},
        extra={},
        written=written,
        source=Dataset.Source.UPLOADED,  # the rows are the caller's
    )
    logger.info(
        "dataset edited", extra={"dataset": dataset.name, "parent": parent.name, "rows": dataset.rows}
    )
    return dataset


def dataset_versions_resolve(*, refs: list[str], field: str = "sources") -> list[Dataset]:
    """Each of "name" or "name@N" resolved (dataset_version_get), in order."""
    if not refs:
        raise InvalidArgument("Name at least one dataset.", field=field)
    return [dataset_version_get(ref=ref, field=field) for ref in refs]
