"""A run's training checkpoints, on disk: where they are, which one to resume from, cleaning up.

    <data_root>/runs/<run_id>/checkpoints/checkpoint-<step>/   transformers' own layout

A checkpoint holds the adapter, the optimizer, scheduler and RNG states and
`trainer_state.json`, which transformers writes last: a folder without it was cut
short (the process died while saving) and is never resumed from. No torch here, so
the service can look without importing it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"
COMPLETE_MARKER = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoints_dir(data_root: Path, run_id: str) -> Path:
    return data_root / "runs" / run_id / CHECKPOINTS_DIR


def checkpoint_step(path: Path) -> int:
    """The optimizer step a checkpoint folder was saved at."""
    match = _NAME.match(path.name)
    if not match:
        raise ValueError(f"{path.name!r} is not a checkpoint folder name")
    return int(match[1])


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step in `folder`, or None."""
    if not folder.is_dir():
        return None
    complete = [p for p in folder.iterdir()
                if p.is_dir() and _NAME.match(p.name) and (p / COMPLETE_MARKER).is_file()]
    return max(complete, key=checkpoint_step, default=None)


def remove_checkpoints(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
