"""The /v1/ inference relay: which vLLM serves a model, and the call passed on to it.

Not an open proxy. A request names a model, never a URL: the relay sends it to a vLLM target
the serving proxy is configured with, as the proxy's ListServedModels names them (the model ->
target table is kept in process memory for ROUTE_TTL_S, so the hot path makes no gRPC call,
and is asked again once when a model is missing from it). The client's own headers are not
passed on (its Authorization is a synthtune token); vLLM gets SYNTHTUNE_VLLM_TOKEN, which is
never stored or logged, and the request id.

Bodies go through as bytes (the model name is rewritten only when vLLM serves an adapter under
another name), answers come back as vLLM sent them: JSON with its status, or the SSE stream
chunk by chunk as it arrives (never buffered; one pooled httpx client per process).

A known adapter (an Adapter row) that no vLLM serves is loaded on first use through the same
service as POST /api/v1/adapters/<name>/load/ when SYNTHTUNE_OPENAI_AUTOLOAD is on.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponse, StreamingHttpResponse

from control_plane.core.errors import DeadlineExceeded, NotFound, Unavailable
from control_plane.deployments import selectors as deployment_selectors
from control_plane.deployments import services as deployment_services
from control_plane.runs.models import Adapter
from synthtune.logs import request_id_var

logger = logging.getLogger(__name__)

# How long a model -> target table is trusted. Loads through synthtune update it at once; this
# bounds how long an unload, or a vLLM restart, elsewhere goes unnoticed (a 404 from vLLM for a
# model the table named also makes the relay ask again).
ROUTE_TTL_S = 5.0
CONNECT_TIMEOUT_S = 5.0
# Between two bytes of an answer: a non-streamed completion sends nothing until it is done.
READ_TIMEOUT_S = 300.0
MAX_CONNECTIONS = 128
POOL_TIMEOUT_S = 30.0  # waiting for a free connection when all are busy
# Below uvicorn's 5 s keep-alive: a connection vLLM is about to close is never reused.
KEEPALIVE_EXPIRY_S = 4.0
EVENT_STREAM = "text/event-stream"
LOAD_HINT = "load it with POST /api/v1/adapters/{name}/load/ (or `synthtune adapters load {name}`)"


# --- the route table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Where a model name goes: vLLM's own id for it (`served`) on each target serving it."""

    served: str
    targets: tuple[str, ...]
    base: bool


@dataclass(frozen=True)
class Snapshot:
    routes: dict[str, Route]
    bases: tuple[str, ...]  # base models served now, in target order
    unreachable: dict[str, str]  # target -> why
    listed_at: float  # time.time() of the listing
    taken: float = field(default_factory=time.monotonic)
    proxy: str = ""  # the proxy address it came from


def _snapshot(listings, proxy: str) -> Snapshot:
    routes: dict[str, tuple[str, list[str], bool]] = {}
    bases: list[str] = []
    unreachable: dict[str, str] = {}

    def add(name: str, served: str, target: str, base: bool) -> None:
        entry = routes.setdefault(name, (served, [], base))
        if entry[0] == served and target not in entry[1]:
            entry[1].append(target)

    for listing in listings:
        if not listing.reachable:
            unreachable[listing.target] = listing.error or "no answer"
            continue
        for model in listing.models:
            base = not model.parent
            if base and model.id not in bases:
                bases.append(model.id)
            add(model.id, model.id, listing.target, base)
        for model in listing.models:
            # An adapter served under another name (adopted, loaded by hand) answers to its folder's too.
            if model.parent and model.adapter_name and model.adapter_name != model.id:
                add(model.adapter_name, model.id, listing.target, False)
    return Snapshot(
        routes={
            name: Route(served, tuple(targets), base) for name, (served, targets, base) in routes.items()
        },
        bases=tuple(bases),
        unreachable=unreachable,
        listed_at=time.time(),
        proxy=proxy,
    )


class RouteTable:
    """The model -> vLLM target table of this process, shared by its threads."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._refresh_lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def clear(self) -> None:
        self._snapshot = None

    def current(self, *, max_age_s: float = ROUTE_TTL_S) -> Snapshot:
        """A listing at most `max_age_s` old (asking the serving proxy when needed). Raises the
        proxy's errors (Unavailable when it is down)."""
        snapshot = self._snapshot
        if self._fresh(snapshot, max_age_s):
            return snapshot
        return self.refresh()

    def refresh(self) -> Snapshot:
        """Ask the proxy again. Concurrent callers share one call: a listing made while a caller
        waited for the lock is taken as is."""
        wanted_after = time.monotonic()
        with self._refresh_lock:
            snapshot = self._snapshot
            proxy = settings.SYNTHTUNE_SERVING_PROXY_ADDR
            if snapshot and snapshot.proxy == proxy and snapshot.taken > wanted_after:
                return snapshot
            listings = deployment_selectors.served_models(targets=[])
            self._snapshot = _snapshot(listings, proxy)
            return self._snapshot

    def lookup(self, model: str) -> tuple[Route | None, Snapshot]:
        """The route of `model`: from the table, else from a fresh listing (one call at most)."""
        snapshot = self._snapshot
        if not self._fresh(snapshot, ROUTE_TTL_S):
            snapshot = self.refresh()
            return snapshot.routes.get(model), snapshot  # just asked: no second call
        route = snapshot.routes.get(model)
        if route is None:
            snapshot = self.refresh()
            route = snapshot.routes.get(model)
        return route, snapshot

    def add(self, model: str, route: Route) -> None:
        """Record what a load just did (the next listing will say the same)."""
        snapshot = self._snapshot
        if snapshot is not None:
            self._snapshot = Snapshot(
                routes={**snapshot.routes, model: route},
                bases=snapshot.bases,
                unreachable=snapshot.unreachable,
                listed_at=snapshot.listed_at,
                taken=snapshot.taken,
                proxy=snapshot.proxy,
            )

    def forget(self) -> None:
        """Drop the table: the next request asks the proxy (a vLLM went away, or forgot a model)."""
        self._snapshot = None

    def load_lock(self, model: str) -> threading.Lock:
        with self._locks_lock:
            return self._load_locks.setdefault(model, threading.Lock())

    @staticmethod
    def _fresh(snapshot: Snapshot | None, max_age_s: float) -> bool:
        return (
            snapshot is not None
            and snapshot.proxy == settings.SYNTHTUNE_SERVING_PROXY_ADDR
            and time.monotonic() - snapshot.taken < max_age_s
        )


ROUTES = RouteTable()


# --- resolving a model ---------------------------------------------------------------------


def _unreachable_note(snapshot: Snapshot) -> str:
    return "; ".join(
        f"vLLM at {target} is unreachable: {why}" for target, why in snapshot.unreachable.items()
    )


def model_not_found(model: str) -> NotFound:
    hint = "GET /v1/models lists the base models vLLM serves and every fine-tuned adapter."
    if ":ckpt-step-" in model:
        hint = "Only a job's exported checkpoint (its fine_tuned_model) is served; " + hint
    return NotFound(
        f"The model {model!r} does not exist. {hint}",
        extra={"field": "model", "openai_code": "model_not_found"},
    )


def resolve(model: str, *, user: AbstractBaseUser | None, fresh: bool = False) -> Route:
    """Where requests for `model` go: a model a configured vLLM serves now, or a known adapter
    loaded first (SYNTHTUNE_OPENAI_AUTOLOAD). NotFound for an unknown model or an unloaded
    adapter without autoload, Unavailable when the proxy or every vLLM that could serve it is
    down, and the load's own errors (rank, base model...) as the load API gives them."""
    if fresh:
        ROUTES.forget()
    route, snapshot = ROUTES.lookup(model)
    if route is not None:
        return route
    # Off the hot path from here: a model no vLLM serves now.
    if not Adapter.objects.filter(name=model).exists():
        if snapshot.unreachable:
            raise Unavailable(
                f"The model {model!r} is not served by any vLLM that answers ({_unreachable_note(snapshot)}); "
                "it may be one of its models. Check that vLLM is running.",
                extra={"field": "model"},
            )
        raise model_not_found(model)
    if not settings.SYNTHTUNE_OPENAI_AUTOLOAD:
        raise NotFound(
            f"The adapter {model!r} exists but no vLLM serves it now: {LOAD_HINT.format(name=model)}, "
            "or set SYNTHTUNE_OPENAI_AUTOLOAD=true to have it loaded on first use.",
            extra={"field": "model", "openai_code": "model_not_loaded"},
        )
    with ROUTES.load_lock(model):
        route = ROUTES.current().routes.get(model)  # loaded by another request meanwhile?
        if route is not None:
            return route
        outcome = deployment_services.deployment_load(adapter_name=model, owner=user)
        targets = tuple(dict.fromkeys(d.target for d in outcome.loaded))
        route = Route(served=outcome.served_name, targets=targets, base=False)
        ROUTES.add(model, route)
        logger.info("adapter autoloaded for /v1/", extra={"adapter": model, "targets": list(targets)})
        return route


# --- calling vLLM --------------------------------------------------------------------------

_client: httpx.Client | None = None
_client_lock = threading.Lock()
_turn = itertools.count()


def client() -> httpx.Client:
    """The process's one pooled HTTP client for vLLM (made on first use, after gunicorn forks)."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                limits = httpx.Limits(
                    max_connections=MAX_CONNECTIONS,
                    max_keepalive_connections=MAX_CONNECTIONS // 4,
                    keepalive_expiry=KEEPALIVE_EXPIRY_S,
                )
                _client = httpx.Client(
                    timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S, pool=POOL_TIMEOUT_S),
                    # retries: a failed connect is tried once more (a POST is never sent twice by it).
                    transport=httpx.HTTPTransport(limits=limits, retries=1),
                    follow_redirects=False,
                    trust_env=False,  # no HTTP(S)_PROXY: the targets are the proxy's own
                )
    return _client


def _headers() -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    if settings.SYNTHTUNE_VLLM_TOKEN:
        headers["Authorization"] = f"Bearer {settings.SYNTHTUNE_VLLM_TOKEN}"
    if request_id := request_id_var.get():
        headers["X-Request-Id"] = request_id
    return headers


@dataclass
class Upstream:
    """vLLM's answer: status and content type, then the body whole or as a stream."""

    status: int
    content_type: str
    body: bytes = b""
    response: httpx.Response | None = None  # open, for a stream

    def close(self) -> None:
        if self.response is not None:
            self.response.close()


def _unreachable(target: str, exc: httpx.HTTPError) -> Unavailable:
    ROUTES.forget()
    return Unavailable(
        f"vLLM at {target} is unreachable ({type(exc).__name__}: {exc}). Check that it is running; "
        "the serving proxy's SYNTHTUNE_VLLM_URL / SYNTHTUNE_VLLM_REPLICAS name it.",
        extra={"target": target},
    )


def send(*, route: Route, path: str, body: bytes) -> Upstream:
    """POST `body` to `path` (/v1/chat/completions...) on one of the route's targets, in turns.
    An event stream (200, text/event-stream) comes back open, anything else read whole.
    Unavailable when that vLLM does not answer, DeadlineExceeded when it stops mid-answer."""
    target = route.targets[next(_turn) % len(route.targets)]
    request = client().build_request("POST", f"{target}{path}", content=body, headers=_headers())
    for attempt in (1, 2):
        try:
            response = client().send(request, stream=True)
            break
        except httpx.RemoteProtocolError as exc:
            # A kept-alive connection vLLM closed as we reused it: nothing was generated; once more.
            if attempt == 2:
                raise _unreachable(target, exc) from None
        except httpx.PoolTimeout:
            raise Unavailable(
                f"All {MAX_CONNECTIONS} connections of this control-plane process to vLLM are busy; "
                "try again shortly.",
                extra={"target": target},
            ) from None
        except httpx.ConnectTimeout as exc:
            raise _unreachable(target, exc) from None
        except httpx.TimeoutException:
            raise DeadlineExceeded(
                f"vLLM at {target} did not answer within {READ_TIMEOUT_S:g}s.", extra={"target": target}
            ) from None
        except httpx.TransportError as exc:
            raise _unreachable(target, exc) from None
    content_type = response.headers.get("content-type", "application/json")
    if response.status_code == 200 and content_type.startswith(EVENT_STREAM):
        return Upstream(status=200, content_type=content_type, response=response)
    try:
        data = response.read()
    except httpx.HTTPError as exc:
        raise _unreachable(target, exc) from None
    finally:
        response.close()
    return Upstream(status=response.status_code, content_type=content_type, body=data)


def _chunks(upstream: Upstream) -> Iterator[bytes]:
    """The stream's bytes as they arrive; a vLLM that fails mid-stream ends it with an error
    event (the SDK raises it). Closing (the client went away) closes the call to vLLM, which
    then stops generating."""
    try:
        yield from upstream.response.iter_raw()
    except httpx.HTTPError as exc:
        logger.warning("vLLM stream broke off", extra={"error": f"{type(exc).__name__}: {exc}"})
        error = {
            "message": f"vLLM stopped mid-stream ({type(exc).__name__}).",
            "type": "server_error",
            "param": None,
            "code": "upstream_error",
        }
        yield f"data: {json.dumps({'error': error})}\n\n".encode()
    finally:
        upstream.close()


def http_response(upstream: Upstream) -> HttpResponse:
    """vLLM's answer as Django's: the same status and body, a stream unbuffered."""
    if upstream.response is None:
        return HttpResponse(upstream.body, status=upstream.status, content_type=upstream.content_type)
    response = StreamingHttpResponse(
        _chunks(upstream), status=upstream.status, content_type=upstream.content_type
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx and friends: pass each chunk on
    return response
