"""Prometheus metrics every process shares, and the /metrics endpoint that serves them.

- `rpc_metrics(method, kind)`: the gRPC server's per-method counters and latency
  histogram, with label children made once and cached, so the interceptor's cost
  per call is two dict lookups, a counter increment and a histogram observe.
- `StateCollector`: a gauge family computed at scrape time ("jobs by state"), so
  nothing on a request path keeps it up to date.
- `start_metrics_server(host, port)`: Prometheus text on http://host:port/metrics
  from a daemon thread (port 0: off). `exposition(...)` renders the same text for
  the control plane's Django view.

Multi-process mode: when PROMETHEUS_MULTIPROC_DIR is set (gunicorn with several
workers; a blank value is unset on importing synthtune), prometheus_client keeps values in files there and the scrape merges the
files of every process; process and GC metrics are then left out, as the library
does. Without it, values live in this process's memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder, start_http_server
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# The *_created series double a scrape's size and no dashboard of ours reads them.
disable_created_metrics()

# Unary calls take milliseconds; StartRun validation and watch streams take seconds to minutes.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

GRPC_HANDLED = Counter(
    "synthtune_grpc_server_handled_total",
    "gRPC calls this server finished, by service, method, type and status code (streams count at their end).",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "synthtune_grpc_server_handling_seconds",
    "Time from a gRPC call's arrival to its end (a stream's whole life), by service, method and type.",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=RPC_BUCKETS,
)


class RpcMetrics:
    """One method's label children: `done(code_name, seconds)` records one finished call."""

    __slots__ = ("_handled", "_labels", "_seconds")

    def __init__(self, full_method: str, kind: str):
        service, _, method = full_method.lstrip("/").rpartition("/")
        self._labels = (service, method, kind)
        self._seconds = GRPC_SECONDS.labels(*self._labels)
        self._handled: dict[str, Any] = {}

    def done(self, code_name: str, seconds: float) -> None:
        handled = self._handled.get(code_name)
        if handled is None:
            handled = self._handled[code_name] = GRPC_HANDLED.labels(*self._labels, code_name)
        handled.inc()
        self._seconds.observe(seconds)


_rpc_metrics: dict[tuple[str, str], RpcMetrics] = {}


def rpc_metrics(full_method: str, kind: str) -> RpcMetrics:
    """The cached RpcMetrics of `full_method` ("/pkg.Service/Method"); kind "unary" or "server_stream"."""
    key = (full_method, kind)
    metrics = _rpc_metrics.get(key)
    if metrics is None:
        # Two threads may both build one; either result counts into the same children.
        metrics = _rpc_metrics[key] = RpcMetrics(full_method, kind)
    return metrics


class StateCollector(Collector):
    """A gauge `name{state=...}` counting what `read()` returns, computed at every scrape.

    `read` yields one state per thing (job, run); every state in `states` is
    reported, 0 when none is in it, so a graph line never vanishes. A failing
    `read` is logged and reports nothing rather than breaking the whole scrape.
    """

    def __init__(self, name: str, documentation: str, states: Sequence[str], read: Callable[[], Iterable[str]]):
        self.name = name
        self.documentation = documentation
        self.states = tuple(states)
        self.read = read

    def describe(self):
        return []  # computed at scrape time: no fixed names to check against duplicates

    def collect(self):
        try:
            counts = dict.fromkeys(self.states, 0)
            for state in self.read():
                counts[str(state)] = counts.get(str(state), 0) + 1
        except Exception:  # noqa: BLE001 - a scrape must not fail because one source did
            logger.exception("metrics: could not read states", extra={"metric": self.name})
            return
        family = GaugeMetricFamily(self.name, self.documentation, labels=["state"])
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family


class _ProcessRegistry(Collector):
    """What this process (or, in multi-process mode, every process of its group) measured."""

    def __init__(self):
        self._multiprocess = None
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client.multiprocess import MultiProcessCollector

            self._multiprocess = MultiProcessCollector(None)

    def describe(self):
        return []

    def collect(self):
        if self._multiprocess is not None:
            yield from self._multiprocess.collect()
        else:
            yield from REGISTRY.collect()


def scrape_registry(collectors: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry for one exposition: this process's metrics plus `collectors` (scrape-time gauges)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessRegistry())
    for collector in collectors:
        registry.register(collector)
    return registry


def exposition(accept: str = "", collectors: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """(body, content type) of one scrape, in the format `accept` asks for (text or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(scrape_registry(collectors)), content_type


@dataclass
class MetricsServer:
    """The running /metrics endpoint; `close()` stops it."""

    host: str
    port: int
    _server: Any

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_metrics_server(host: str, port: int, *, collectors: Iterable[Collector] = ()) -> MetricsServer | None:
    """Serve /metrics on host:port from a daemon thread; None when port is 0 (metrics off).

    Scrapes never touch the caller's event loop. Raises OSError when the port is taken:
    a process told to expose metrics should not run silently without them.
    """
    if not port:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=scrape_registry(collectors))
    except OSError as exc:
        logger.error("cannot serve metrics on %s:%s (SYNTHTUNE_METRICS_HOST/PORT): %s", host, port, exc)
        raise
    logger.info("metrics endpoint up", extra={"metrics_host": host, "metrics_port": port})
    return MetricsServer(host=host, port=port, _server=server)
