"""`python -m trainer_svc.child <run_dir> [--events-file]`: train one run in its own process.

The service starts one per run (crash isolation, a real cancel, memory handed
back at the end). Events go to the parent as JSON lines on the original
stdout; everything libraries print goes to stderr (the run's child.log). With
`--events-file` (the kubeflow launcher: training runs in other pods, there is no
pipe) rank 0 appends them to the run folder's child-events.jsonl instead
(trainer_svc.event_file).
SIGTERM, or a `cancel` file in the run folder (how the service cancels a run of
several processes under torchrun), asks training to stop within one step. If the service dies the
kernel sends SIGKILL here, so a run never trains unsupervised, and its checkpoints
stay for the restarted service to resume from (a SIGTERM would cancel the run and
delete them).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from synthtune.errors import SynthtuneError
from trainer_svc.event_file import CHILD_EVENTS_FILE, append_event

logger = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """The kernel SIGKILLs this process when its parent dies (the service, or torchrun under it)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the parent's shutdown still stops us
        pass


def _event_stream():
    """A writer on the real stdout; fd 1 then points at stderr so stray prints can't corrupt events."""
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


CANCEL_FILE = "cancel"


def main(argv: list[str]) -> int:
    die_with_parent()
    run_dir = Path(argv[0])
    rank0 = int(os.environ.get("RANK", "0")) == 0
    to_file = "--events-file" in argv[1:]
    events = _event_stream()
    if to_file or not rank0:
        # Under torchrun every rank shares the pipe to the service: world rank 0 alone writes events
        # (with --events-file, to the run folder instead).
        events.close()
        events = None
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()  # trainer callbacks and the log handler may emit from other threads

    def emit(event: dict) -> None:
        if event.get("type") == "error":  # also in this process's log: a pod's log tail names it
            logger.error("training failed on this rank: %s", event["message"])
        if not rank0:
            return
        with lock:
            if to_file:
                append_event(run_dir / CHILD_EVENTS_FILE, event)
            else:
                events.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")

    def should_stop() -> bool:
        return stop.is_set() or (run_dir / CANCEL_FILE).exists()

    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    from trainer_svc import training  # heavy imports after the signal handler is in place

    try:
        training.main(config, on_event=emit, should_stop=should_stop)
    except SynthtuneError as exc:
        emit({"type": "error", "message": exc.message})
        return 2
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        logger.exception("training failed")
        emit({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
