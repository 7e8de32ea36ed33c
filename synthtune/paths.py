"""Safe names and relative paths under the data root.

Anything that crosses a service boundary names an artifact by id or by a
relative path checked here: no '..', no absolute path, no symlink that
escapes the root.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from synthtune.errors import InvalidArgument

MAX_COMPONENT_BYTES = 255  # NAME_MAX on Linux file systems
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_name(name: str, *, field: str = "name") -> str:
    """Return `name` if it is a safe single path component, else raise InvalidArgument."""
    if not name:
        raise InvalidArgument(f"{field} is required.", field=field)
    if "/" in name or "\\" in name or ".." in name:
        raise InvalidArgument(
            f"{field} {name!r} must be a plain name: no '/', '\\' or '..'.", field=field
        )
    if not _NAME_RE.match(name):
        raise InvalidArgument(
            f"{field} {name!r} may use letters, digits, '.', '-' and '_' (at most 128), "
            "starting with a letter or digit.",
            field=field,
        )
    return name


def resolve_under(root: Path, relative: str, *, field: str = "path") -> Path:
    """Resolve `relative` inside `root`, refusing absolute paths, '..' and symlink escapes."""
    if not relative:
        raise InvalidArgument(f"{field} is required.", field=field)
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        raise InvalidArgument(f"{field} {relative!r} must be relative to the data root.", field=field)
    if ".." in pure.parts or "\\" in relative:
        raise InvalidArgument(f"{field} {relative!r} must not contain '..'.", field=field)
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES for part in pure.parts):
        # The file system would refuse it (ENAMETOOLONG) at the first stat, as an OSError no caller expects.
        raise InvalidArgument(f"{field} has a folder or file name longer than {MAX_COMPONENT_BYTES} bytes.",
                              field=field)
    root_resolved = root.resolve()
    target = (root_resolved / pure).resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise InvalidArgument(f"{field} {relative!r} points outside the data root.", field=field)
    return target
