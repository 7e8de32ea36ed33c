"""gunicorn settings and hooks for the control plane: `gunicorn -c python:control_plane.gunicorn_conf
control_plane.wsgi --bind ...`, as `make up`, the image and the chart all start it.

Workers and threads (the command line and GUNICORN_CMD_ARGS still override them):
- SYNTHTUNE_WEB_WORKERS processes (default 2): Python runs one thread at a time per process, so
  one process used about one core under load and list calls queued behind each other.
- SYNTHTUNE_WEB_THREADS threads each (default 100), gthread: every open SSE stream holds a thread
  for up to SYNTHTUNE_SSE_MAX_S, asleep in core.sse's shared watch (no CPU, no DB of its own), so
  threads must outnumber the streams and calls in flight; with 16, 100 streams left no thread for
  the API and its calls timed out.
- timeout 0: a thread busy with a stream must not get its worker killed.
- keepalive 30 s (gunicorn's 2 s): longer than clients keep an idle pooled connection (httpx 5 s),
  so the client closes first. With 2 s, a client reusing a connection just as gunicorn closed it
  got "Server disconnected without sending a response" under load (EventSource's reconnect after
  1 s, a REST client's next call). An idle kept-alive connection costs no thread in gthread.

Metrics with several workers: each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR
and /metrics merges them. Unset (or blank), a fresh folder under the temporary directory is used (an
emptyDir in Kubernetes: the root filesystem is read-only); it is set on the web process only.
- on_starting: clear what a previous server left there, so counters start with this one;
- child_exit: drop a dead worker's live gauges.
With one worker, values stay in memory unless the variable is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import synthtune  # noqa: F401 - first: it unsets a blank PROMETHEUS_MULTIPROC_DIR, read below

worker_class = "gthread"
workers = int(os.environ.get("SYNTHTUNE_WEB_WORKERS", "2"))
threads = int(os.environ.get("SYNTHTUNE_WEB_THREADS", "100"))
timeout = 0
keepalive = 30
# No control socket (gunicorn 25.1+ opens one for gunicornc by default): we never use it, its
# default path is one per user ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl), which a second
# server (the tests start several) unlinks and takes over, and it is one more way in that can
# resize or stop the server.
control_socket_disable = True

_made_folder = ""
if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Set here, in the master, before any worker imports prometheus_client: they inherit it.
    _made_folder = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="synthtune-metrics-")


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


def on_exit(server) -> None:
    if _made_folder:
        shutil.rmtree(_made_folder, ignore_errors=True)
