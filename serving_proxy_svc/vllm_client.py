"""An async client for the vLLM routes the proxy uses, with vLLM's answers mapped to precise errors.

Routes: GET /v1/models, POST /v1/load_lora_adapter, POST /v1/unload_lora_adapter,
POST /v1/chat/completions and /v1/completions. Every call has a timeout.

What vLLM 0.32 answers, and what it becomes here (DESIGN.md, "What it answered"):
- connection refused, reset, timeout           -> UNAVAILABLE naming the URL
- 401 / 403 (its --api-key)                     -> UNAUTHENTICATED / PERMISSION_DENIED
- load/unload 404 {"detail":"Not Found"}        -> FAILED_PRECONDITION: the runtime LoRA route is off
- load 404 (its NotFoundError)                  -> NOT_FOUND: no adapter at that path, as vLLM sees it
- load 400 "already been loaded"                -> AdapterAlreadyLoaded (the caller re-reads /v1/models)
- load 400 "conflicts with a served base model" -> ALREADY_EXISTS
- load 500 (rank above --max-lora-rank, weights
  of another base: size mismatch)               -> FAILED_PRECONDITION with vLLM's reason
- unload 404                                    -> NOT_FOUND: not loaded there
- completion 404 (unknown model)                -> NOT_FOUND
- completion 400 (too long, no chat template)   -> INVALID_ARGUMENT with vLLM's reason
- other 5xx                                     -> UNAVAILABLE
Success bodies of load and unload are plain text, not JSON, and are read as text.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from serving_proxy_svc.errors import Internal, PermissionDenied, Unauthenticated
from serving_proxy_svc.metrics import ADAPTERS_LOADED, outcome_of, vllm_call_done
from synthtune.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from synthtune.logs import redact_text

RUNTIME_LORA_HINT = "start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (and --enable-lora)"
_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class ModelCard:
    """One entry of /v1/models. `parent` is empty for a base model; an adapter's `root` is its path."""

    id: str
    root: str
    parent: str

    @property
    def is_adapter(self) -> bool:
        return bool(self.parent)


@dataclass(frozen=True)
class Completion:
    model: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float


class AdapterAlreadyLoaded(Exception):
    """vLLM says the served name is taken; only /v1/models tells whether it is the same path."""


class VllmClient:
    """One per process: a pooled aiohttp session; `target` is a base URL such as http://127.0.0.1:8000."""

    def __init__(self, *, timeout_s: float, generation_timeout_s: float, max_connections: int = 64):
        self.timeout_s = timeout_s
        self.generation_timeout_s = generation_timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the event loop
        self._proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]] = {}  # target -> (proxy, its auth)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # aiohttp, not httpx: less CPU per call, and far less with calls in flight together (a
            # comparison's /v1/models and two completions at once: 103.5 against 106.6 ms on a 100 ms
            # endpoint, one call 0.2-0.4 ms less). Idle connections go after 4 s, before uvicorn's (vLLM's)
            # 5 s, so a kept one is not one the server is closing. No trust_env: HTTP(S)_PROXY and NO_PROXY
            # are read once per target (_proxy), not on every call.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=4.0),
                cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    def _proxy(self, target: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """The proxy the environment names for `target` (HTTP(S)_PROXY, NO_PROXY, as aiohttp's
        trust_env reads them), looked up once per target. With trust_env, aiohttp looked on every call,
        in two thread-pool hops (the proxy variables, and ~/.netrc for the target): about a third of
        the proxy's own time on a /v1/models call. Credentials for vLLM itself come from the token only,
        as with httpx before (a ~/.netrc entry for the host beside a token made aiohttp raise)."""
        found = self._proxies.get(target)
        if found is None:
            try:
                found = get_env_proxy_for_url(URL(target))
            except LookupError:  # no proxy for this scheme, or NO_PROXY names the host
                found = (None, None)
            self._proxies[target] = found
        return found

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def models(self, target: str, *, token: str) -> list[ModelCard]:
        """Everything `target` serves: base models first, then adapters, as vLLM lists them."""
        response = await self._send("GET", target, "/v1/models", token=token, timeout_s=self.timeout_s)
        if response.status_code == 404:
            raise FailedPrecondition(
                f"{target} has no /v1/models: is it the base URL of a vLLM (OpenAI-compatible) server?",
                extra={"target": target})
        _raise_for_common(response, target, "GET /v1/models")
        try:
            cards = [ModelCard(id=str(card["id"]), root=str(card.get("root") or ""),
                               parent=str(card.get("parent") or ""))
                     for card in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise Unavailable(f"vLLM at {target} sent a malformed /v1/models answer ({type(exc).__name__}).",
                              extra={"target": target}) from None
        ADAPTERS_LOADED.labels(target).set(sum(card.is_adapter for card in cards))
        return cards

    async def load_adapter(self, target: str, *, name: str, path: str, token: str) -> str:
        """Load `path` (as vLLM sees it) under `name`; vLLM's plain-text success message."""
        response = await self._send("POST", target, "/v1/load_lora_adapter", token=token, timeout_s=self.timeout_s,
                                    body={"lora_name": name, "lora_path": path})
        status, message = response.status_code, _error_message(response)
        if status == 200:
            return response.text
        if _route_missing(response):
            raise FailedPrecondition(
                f"vLLM at {target} has no runtime LoRA route (POST /v1/load_lora_adapter answered 404 Not Found): "
                f"{RUNTIME_LORA_HINT}.", extra={"target": target})
        if status == 404:
            raise NotFound(
                f"vLLM at {target} found no adapter at {path} ({message}). That is the path as vLLM sees it: "
                "check SYNTHTUNE_VLLM_ADAPTER_ROOT (vLLM's mount of the data root's adapters/ folder).",
                extra={"target": target, "path": path})
        if status == 400 and "already been loaded" in message:
            raise AdapterAlreadyLoaded(message)
        if status == 400 and "conflicts with a served base model" in message:
            raise AlreadyExists(f"vLLM at {target} serves a base model named {name!r}: {message}",
                                extra={"target": target})
        if status in (400, 422) or status == 500:
            # A 500 here is vLLM failing to build the adapter: a rank above --max-lora-rank, or weights
            # shaped for another base model. The server stays healthy; the adapter doesn't fit it.
            raise FailedPrecondition(f"vLLM at {target} could not load adapter {name!r}: {message}",
                                     extra={"target": target, "vllm_status": status})
        _raise_for_common(response, target, "POST /v1/load_lora_adapter")
        raise Internal(f"vLLM at {target} answered load with HTTP {status}: {message}", extra={"target": target})

    async def unload_adapter(self, target: str, *, name: str, token: str) -> str:
        response = await self._send("POST", target, "/v1/unload_lora_adapter", token=token, timeout_s=self.timeout_s,
                                    body={"lora_name": name})
        status, message = response.status_code, _error_message(response)
        if status == 200:
            return response.text
        if _route_missing(response):
            raise FailedPrecondition(
                f"vLLM at {target} has no runtime LoRA route (POST /v1/unload_lora_adapter answered 404 Not Found): "
                f"{RUNTIME_LORA_HINT}.", extra={"target": target})
        if status == 404:
            raise NotFound(f"{name!r} is not loaded on vLLM at {target}.", extra={"target": target})
        if status in (400, 422):
            raise InvalidArgument(f"vLLM at {target} refused to unload {name!r}: {message}", extra={"target": target})
        _raise_for_common(response, target, "POST /v1/unload_lora_adapter")
        raise Internal(f"vLLM at {target} answered unload with HTTP {status}: {message}", extra={"target": target})

    async def complete(self, target: str, *, route: str, body: dict[str, Any], token: str) -> Completion:
        """One completion on `route` (/v1/chat/completions or /v1/completions); `body` names the model."""
        started = time.perf_counter()
        response = await self._send("POST", target, route, token=token, timeout_s=self.generation_timeout_s,
                                    body=body)
        latency_ms = (time.perf_counter() - started) * 1000
        status, model = response.status_code, body.get("model", "")
        if status == 404:
            raise NotFound(
                f"vLLM at {target} does not serve {model!r} ({_error_message(response)}). A restarted vLLM "
                "forgets runtime-loaded adapters: load it again.", extra={"target": target, "model": model})
        if status in (400, 422):
            raise InvalidArgument(f"vLLM at {target} refused the request for {model!r}: {_error_message(response)}",
                                  extra={"target": target, "model": model})
        _raise_for_common(response, target, f"POST {route}")
        if status != 200:
            raise Internal(f"vLLM at {target} answered {route} with HTTP {status}: {_error_message(response)}",
                           extra={"target": target})
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") if "message" in choice else choice["text"]
            usage = data.get("usage") or {}
            return Completion(
                model=str(model), text=str(text or ""), finish_reason=str(choice.get("finish_reason") or ""),
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0), latency_ms=latency_ms,
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise Unavailable(f"vLLM at {target} sent a malformed {route} answer ({type(exc).__name__}).",
                              extra={"target": target}) from None

    async def _send(self, method: str, target: str, route: str, *, token: str, timeout_s: float,
                    body: dict[str, Any] | None = None) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started, outcome = time.perf_counter(), "cancelled"
        try:
            # The whole call, connect to the last byte, within timeout_s (a slow drip too).
            async with asyncio.timeout(timeout_s):
                proxy, proxy_auth = self._proxy(target)
                async with self._http().request(method, f"{target}{route}", json=body, headers=headers,
                                                allow_redirects=False, proxy=proxy, proxy_auth=proxy_auth) as reply:
                    response = Reply(status_code=reply.status, content=await reply.read())
            outcome = outcome_of(response.status_code)
            return response
        except TimeoutError:
            outcome = "timeout"
            raise Unavailable(f"vLLM at {target} did not answer {method} {route} within {timeout_s:g}s.",
                              extra={"target": target}) from None
        except aiohttp.ClientConnectorError as exc:
            outcome = "unreachable"
            raise Unavailable(f"vLLM at {target} is unreachable ({_reason(exc)}): is it running at that URL?",
                              extra={"target": target}) from None
        except aiohttp.ClientError as exc:
            outcome = "transport_error"
            raise Unavailable(f"vLLM at {target} dropped {method} {route} ({type(exc).__name__}: {_reason(exc)}).",
                              extra={"target": target}) from None
        finally:
            vllm_call_done(target, route, outcome, time.perf_counter() - started)


@dataclass(frozen=True)
class Reply:
    """A vLLM answer, read whole: its status and body."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def _raise_for_common(response: Reply, target: str, what: str) -> None:
    """Raise for the statuses every route shares (auth, server errors); return on 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 401:
        raise Unauthenticated(
            f"vLLM at {target} answered 401 to {what}: it runs with --api-key and the vLLM token is missing or "
            "wrong (send `token` in the request or set SYNTHTUNE_VLLM_TOKEN).", extra={"target": target})
    if status == 403:
        raise PermissionDenied(f"vLLM at {target} answered 403 to {what}: {_error_message(response)}",
                               extra={"target": target})
    if status >= 500:
        raise Unavailable(f"vLLM at {target} failed {what} (HTTP {status}): {_error_message(response)}",
                          extra={"target": target})


def _route_missing(response: Reply) -> bool:
    """FastAPI's own 404 for a route that does not exist, not a vLLM error about the adapter."""
    if response.status_code != 404:
        return False
    try:
        return response.json() == {"detail": "Not Found"}
    except ValueError:
        return False


def _error_message(response: Reply) -> str:
    """vLLM's own message ({"error": {"message"}}), else FastAPI's {"detail"}, else the body start."""
    text = response.text[:8000]
    message = ""
    try:
        data = json.loads(text)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
        elif isinstance(error, str):
            message = error
        elif isinstance(data, dict) and data.get("detail"):
            message = str(data["detail"])
    except ValueError:
        pass
    message = " ".join((message or text).split())
    if len(message) > _MESSAGE_CHARS:
        message = message[:_MESSAGE_CHARS] + "..."
    return redact_text(message)


def _reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or isinstance(getattr(seen, "os_error", None),
                                                                  ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


__all__ = ["RUNTIME_LORA_HINT", "AdapterAlreadyLoaded", "Completion", "ModelCard", "VllmClient"]
