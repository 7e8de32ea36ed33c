"""An async client for OpenAI-compatible `/chat/completions`, built to be hammered politely.

- bearer token, optional TLS-skip, a timeout on every request;
- retries (tenacity) with exponential backoff and full jitter on 429, 408, 5xx,
  timeouts, connection errors and malformed bodies, honouring `Retry-After`;
- an RPM limit (aiolimiter) and bounded concurrency, both counted per HTTP attempt.

Errors are EndpointError; `fatal` ones (bad token, unknown model) mean no
later request can succeed either, so the caller should stop the job.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import ssl
import time
from dataclasses import dataclass
from typing import Any, Self

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from synthtune.logs import REDACTED, redact_text
from synthtune.outbound import OutboundPolicy, OutboundRefused, guarded_transport

logger = logging.getLogger(__name__)

_RETRYABLE_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}
_FATAL_STATUSES = {401, 403, 404}
_BODY_SNIPPET = 300
# A server asking for an hour's pause would stall the job; beyond this we retry anyway.
RETRY_AFTER_CAP_S = 120.0


class EndpointError(Exception):
    """A request that gave no usable answer. `message` is safe to show and store."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        fatal: bool = False,
        status: int | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.fatal = fatal
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ChatResult:
    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    model: str
    token: str
    skip_tls_verify: bool
    timeout_s: float
    max_retries: int
    concurrency: int
    requests_per_minute: float  # 0: unlimited
    backoff_initial_s: float
    backoff_max_s: float
    # Checked on every new connection (synthtune.outbound); None: no check (tests' own clients).
    outbound: OutboundPolicy | None = None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class ChatClient:
    """One per job: holds the connection pool, the limiter and the concurrency bound."""

    def __init__(self, config: ClientConfig):
        self.config = config
        headers = {"Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
        transport = None
        if config.outbound is not None:
            transport = guarded_transport(config.outbound, verify=not config.skip_tls_verify, limits=limits)
        self._http = httpx.AsyncClient(
            base_url=config.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            verify=not config.skip_tls_verify,
            limits=limits,
            transport=transport,
            follow_redirects=False,
        )
        self._slots = asyncio.Semaphore(config.concurrency)
        # Token totals over every successful call, planning included, from the endpoint's `usage`.
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._limiter = _rpm_limiter(config.requests_per_minute, burst=config.concurrency)
        # Exponential backoff with full jitter: a random wait up to initial * 2^n, capped.
        self._backoff = wait_random_exponential(multiplier=config.backoff_initial_s, max=config.backoff_max_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def chat(
        self,
        *,
        messages: list[dict[str, str]],
        sampling: dict[str, Any] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatResult:
        """One chat completion, retried as configured; raises EndpointError when it gives up."""
        body: dict[str, Any] = {"model": self.config.model, "messages": messages, **(sampling or {})}
        if response_format is not None:
            body["response_format"] = response_format
        attempts = self.config.max_retries + 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, EndpointError) and exc.retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(body)
        except EndpointError as exc:
            message = self._scrub(exc.message)
            if exc.retryable and attempts > 1:
                message += f" (gave up after {attempts} attempts)"
            raise EndpointError(message, fatal=exc.fatal, status=exc.status) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.info(
            "retrying endpoint request",
            extra={
                "attempt": state.attempt_number,
                "reason": self._scrub(getattr(exc, "message", str(exc))),
                "wait_s": round(state.upcoming_sleep, 3),
            },
        )

    def _scrub(self, message: str) -> str:
        # Error text is stored with the job; an endpoint that echoes the token must not leak it.
        if self.config.token:
            message = message.replace(self.config.token, REDACTED)
        return redact_text(message)

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, EndpointError) and exc.retry_after_s is not None:
            # The server said when; waiting less would just earn another 429.
            return min(exc.retry_after_s, RETRY_AFTER_CAP_S)
        return backoff

    async def _attempt(self, body: dict[str, Any]) -> ChatResult:
        async with self._slots, self._limiter:
            try:
                # httpx's timeout bounds each phase; this bounds the whole request (a slow drip too).
                async with asyncio.timeout(self.config.timeout_s):
                    response = await self._http.post("chat/completions", json=body)
            except (httpx.TimeoutException, TimeoutError):
                raise EndpointError(
                    f"request timed out after {self.config.timeout_s:g}s", retryable=True
                ) from None
            except OutboundRefused as exc:
                # The name now resolves somewhere the policy denies: no retry can make it allowed.
                raise EndpointError(OutboundPolicy.message(self.config.base_url, str(exc)), fatal=True) from None
            except httpx.TransportError as exc:
                if _caused_by(exc, ssl.SSLCertVerificationError):
                    # Retrying can't fix an untrusted certificate; say what can.
                    raise EndpointError(
                        f"the endpoint's TLS certificate is not trusted ({exc}); "
                        "use a trusted certificate or set endpoint.skip_tls_verify",
                        fatal=True,
                    ) from None
                raise EndpointError(
                    f"connection error: {type(exc).__name__}: {exc}", retryable=True
                ) from None
        result = _parse_response(response)
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        return result


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _rpm_limiter(rpm: float, *, burst: int) -> AsyncLimiter | _NoLimit:
    if rpm <= 0:
        return _NoLimit()
    # A bucket of `burst` refilled at rpm/60 per second: the average stays at rpm while
    # a full set of concurrent workers may start together.
    capacity = max(1.0, min(float(burst), rpm))
    return AsyncLimiter(capacity, capacity * 60.0 / rpm)


class _NoLimit:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc) -> None:
        return None


def _error_message(response: httpx.Response) -> str:
    """The endpoint's own error message when it sends one ({"error": {"message"}}), else the body start."""
    text = response.text[:4000]
    try:
        data = json.loads(text)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:_BODY_SNIPPET]
        if isinstance(error, str):
            return error[:_BODY_SNIPPET]
        if isinstance(data, dict) and data.get("detail"):
            return str(data["detail"])[:_BODY_SNIPPET]
    except (ValueError, AttributeError):
        pass
    return " ".join(text.split())[:_BODY_SNIPPET]


def _parse_response(response: httpx.Response) -> ChatResult:
    status = response.status_code
    if status != 200:
        detail = _error_message(response)
        message = f"endpoint answered HTTP {status}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            message += " (check endpoint.token)"
        elif status == 404:
            message += " (check endpoint.base_url and endpoint.model)"
        raise EndpointError(
            message,
            status=status,
            retryable=status in _RETRYABLE_STATUSES or status >= 500,
            fatal=status in _FATAL_STATUSES,
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )
    try:
        data = response.json()
        choice = data["choices"][0]
        content = choice["message"].get("content")
        finish_reason = str(choice.get("finish_reason") or "")
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        # A truncated or garbled body is usually a proxy hiccup: worth another try.
        snippet = " ".join(response.text.split())[:120]
        raise EndpointError(f"endpoint sent a malformed completion: {snippet!r}", retryable=True) from None
    if content is not None and not isinstance(content, str):
        raise EndpointError("endpoint sent a non-text message content", retryable=True)
    return ChatResult(
        content=content or "",
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )
