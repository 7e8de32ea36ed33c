"""Prometheus metrics of the control plane: HTTP, gRPC calls to the services, DB state, the worker.

- `MetricsMiddleware` (first in MIDDLEWARE) counts and times every request by
  method, route name and status. A streamed response (SSE) is timed to its
  headers, not to the end of the stream.
- `metrics_view` serves /metrics on the web's own HTTP port: this process's (or,
  with PROMETHEUS_MULTIPROC_DIR, every gunicorn worker's) counters, plus gauges
  read from the DB at scrape time (jobs and runs by state, deployments and
  adapters loaded per vLLM target). Open like /healthz, unless
  SYNTHTUNE_METRICS_TOKEN is set: then it wants that bearer token.
- `grpc_call_done` counts the control plane's own gRPC calls (web and worker).
- The worker's metrics (`WORKER_*`) are served by `python -m control_plane worker`
  on SYNTHTUNE_METRICS_PORT.
"""

from __future__ import annotations

import hmac
import logging
from time import perf_counter
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from synthtune.metrics import RPC_BUCKETS, exposition

logger = logging.getLogger(__name__)

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "synthtune_http_requests_total",
    "HTTP requests the control plane answered, by method, route name and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "synthtune_http_request_seconds",
    "Time to answer an HTTP request (a streamed response: to its headers), by method and route name.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
GRPC_CLIENT_HANDLED = Counter(
    "synthtune_grpc_client_handled_total",
    "gRPC calls the control plane made to the services, by service, method, type and status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
GRPC_CLIENT_SECONDS = Histogram(
    "synthtune_grpc_client_handling_seconds",
    "Time of the control plane's gRPC calls (a stream: its whole life), by service, method and type.",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=RPC_BUCKETS,
)
WORKER_FOLLOWS = Counter(
    "synthtune_worker_follows_total",
    "Watch streams the worker consumed until they ended, by follower and outcome "
    "(ended, deadline, unavailable, error).",
    ["follower", "outcome"],
)
WORKER_STREAMS = Gauge(
    "synthtune_worker_streams_active",
    "Jobs the worker is following now (a stream open, or waiting to retry one), by follower.",
    ["follower"],
    multiprocess_mode="livesum",
)

# Anything else is one label value, so a client can't grow the series without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Counts and times every request. Label children are cached: two dict lookups a request."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._static_prefix = "/" + str(settings.STATIC_URL or "static/").lstrip("/")
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._seconds: dict[tuple[str, str], Any] = {}

    def __call__(self, request):
        started = perf_counter()
        response = self.get_response(request)
        elapsed = perf_counter() - started
        method = request.method if request.method in _METHODS else "other"
        route = self._route(request)
        key = (method, route, response.status_code)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = HTTP_REQUESTS.labels(method, route, str(response.status_code))
        counter.inc()
        timer = self._seconds.get(key[:2])
        if timer is None:
            timer = self._seconds[key[:2]] = HTTP_SECONDS.labels(method, route)
        timer.observe(elapsed)
        return response

    def _route(self, request) -> str:
        match = getattr(request, "resolver_match", None)
        if match is not None:
            return match.view_name  # e.g. "datasets:dataset-list": one value per route, never per id
        if request.path.startswith(self._static_prefix):
            return "static"  # WhiteNoise answers before URL resolution
        return "unmatched"


def grpc_call_done(service: str, method: str, kind: str, code: str, seconds: float) -> None:
    """Record one finished gRPC call the control plane made."""
    key = (service, method, kind)
    children = _client_children.get(key)
    if children is None:
        labels = (service.replace(" ", "_"), method, kind)  # "serving proxy" -> serving_proxy
        children = _client_children[key] = (labels, {}, GRPC_CLIENT_SECONDS.labels(*labels))
    labels, handled, timer = children
    counter = handled.get(code)
    if counter is None:
        counter = handled[code] = GRPC_CLIENT_HANDLED.labels(*labels, code)
    counter.inc()
    timer.observe(seconds)


_client_children: dict[tuple[str, str, str], tuple[tuple[str, str, str], dict[str, Any], Any]] = {}


class DatabaseStateCollector(Collector):
    """Gauges read from the DB at scrape time: a few indexed GROUP BY queries, no request-path cost."""

    def describe(self):
        return []

    def collect(self):
        from control_plane.datasets.models import Dataset, GenerationJob
        from control_plane.deployments.models import Deployment
        from control_plane.runs.models import Run

        try:
            jobs = _by(GenerationJob, "state")
            runs = _by(Run, "state")
            datasets = _by(Dataset, "status")
            deployments = list(
                Deployment.objects.values_list("target", "state").annotate(n=Count("id")).order_by()
            )
        except Exception:  # noqa: BLE001 - an unreachable DB must not break the HTTP metrics
            logger.exception("metrics: could not read the database")
            return
        yield _family("synthtune_control_plane_generation_jobs", "Generation jobs by state.",
                      GenerationJob.State.values, jobs)
        yield _family("synthtune_control_plane_runs", "Fine-tuning runs by state.", Run.State.values, runs)
        yield _family("synthtune_control_plane_datasets", "Datasets by status.", Dataset.Status.values, datasets,
                      label="status")
        by_target = GaugeMetricFamily(
            "synthtune_control_plane_deployments", "Adapter deployments by vLLM target and state.",
            labels=["target", "state"])
        loaded = GaugeMetricFamily(
            "synthtune_control_plane_adapters_loaded",
            "Adapters loaded per vLLM target, as last reconciled with its /v1/models.", labels=["target"])
        loaded_per_target: dict[str, int] = {}
        for target, state, count in deployments:
            by_target.add_metric([target, state], count)
            loaded_per_target.setdefault(target, 0)
            if state == Deployment.State.LOADED:
                loaded_per_target[target] += count
        for target, count in loaded_per_target.items():
            loaded.add_metric([target], count)
        yield by_target
        yield loaded


def _by(model, field: str) -> dict[str, int]:
    return dict(model.objects.values_list(field).annotate(n=Count("pk")).order_by())


def _family(name: str, documentation: str, known: list[str], counts: dict[str, int], *, label: str = "state"):
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value in dict.fromkeys([*known, *counts]):
        family.add_metric([value], counts.get(value, 0))
    return family


def _authorized(request) -> bool:
    token = settings.SYNTHTUNE_METRICS_TOKEN
    if not token:
        return True
    given = request.headers.get("Authorization", "").encode()
    return hmac.compare_digest(given, f"Bearer {token}".encode())


@login_not_required
@require_GET
def metrics_view(request):
    """Prometheus text (or OpenMetrics, by Accept) for a scrape of this control-plane instance."""
    if not _authorized(request):
        response = HttpResponse("metrics need 'Authorization: Bearer <SYNTHTUNE_METRICS_TOKEN>'\n",
                                status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = exposition(request.headers.get("Accept", ""), [DatabaseStateCollector()])
    return HttpResponse(body, content_type=content_type)
