"""gunicorn hooks for the control plane: `gunicorn -c python:control_plane.gunicorn_conf control_plane.wsgi ...`.

They matter only with PROMETHEUS_MULTIPROC_DIR set, which is how several gunicorn
workers (`--workers N`) serve one set of metrics: each worker writes its values
to files in that folder and /metrics merges them. The folder must be empty and
writable at start (an emptyDir in Kubernetes) and is set on the web process only.
- on_starting: clear what a previous server left there, so counters start with this one;
- child_exit: drop a dead worker's live gauges.
With one worker, leave PROMETHEUS_MULTIPROC_DIR unset: values stay in memory.
"""

from __future__ import annotations

import os
from pathlib import Path


def on_starting(server) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink(missing_ok=True)


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
