"""Small file helpers: checksums, writes that never leave a half-written file, and a full disk
told apart from other I/O errors."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

from synthtune.errors import ResourceExhausted

_CHUNK = 1 << 20
# A full file system, or a full quota on it.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class StorageFull(ResourceExhausted, OSError):
    """No room left for a file being written (ENOSPC or EDQUOT): gRPC RESOURCE_EXHAUSTED, HTTP 507
    Insufficient Storage, with a message that says what to do. Still an OSError, so code that
    handles OSError around a write handles it too."""

    def __init__(self, what: str, *, then: str = "try again"):
        super().__init__(
            f"No space left on the data root's disk while writing {what}: nothing was saved. "
            f"Free some space there (or give the volume more), then {then}.",
            extra={"reason": "no_space", "path": what},
        )
        self.errno = errno.ENOSPC

    @property
    def http_status(self) -> int:
        return 507


def is_no_space(exc: BaseException) -> bool:
    """True for a write refused because the disk (or a quota) is full, also inside an exception
    group (a task group's workers) and from libraries that report the OS error only in their
    message (safetensors' Rust writer: "No space left on device (os error 28)")."""
    if isinstance(exc, BaseExceptionGroup):
        return any(is_no_space(inner) for inner in exc.exceptions)
    if isinstance(exc, StorageFull) or (isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS):
        return True
    return f"(os error {errno.ENOSPC})" in str(exc) or os.strerror(errno.ENOSPC) in str(exc)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder and a rename: `path` is
    either untouched or whole. A full disk raises StorageFull (naming the folder and file, not
    the absolute path), with the temp file removed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        if is_no_space(exc):
            raise StorageFull(f"{path.parent.name}/{path.name}") from exc
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_no_space(exc):
            raise StorageFull(f"{path.parent.name}/{path.name}") from exc
        raise
