"""A scriptable fake OpenAI-compatible endpoint on loopback, for tests and the bench only.

    with FakeOpenAI(latency_s=0.0) as fake:
        fake.script(Status(429, retry_after="0.2"), Status(500), Hang(), Malformed(), Reply(""))
        ... point a job at fake.base_url ...

Scripted actions answer the next chat requests in arrival order; afterwards
`default` answers (a normal reply unless changed). Normal replies answer
instruction-planning prompts (they ask for '"instructions"' JSON) with fresh
numbered instructions, and anything else with a short answer. Every request is
recorded in `requests` (headers, JSON body, arrival time), so tests can check
what was sent. Knobs: `latency_s` before every answer, `reject_response_format`
(400 like endpoints without structured output), `tls` (serve HTTPS).

`python -m tests.support.fake_openai --latency 0.1` serves in its own process
(the bench uses this so the fake doesn't compete with the client for the GIL);
`--judge` makes it answer "judgement" schema requests with a valid verdict too.
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Reply:
    """A 200 completion. content=None: the default content for the request."""

    content: str | None = None
    prompt_tokens: int = 7
    completion_tokens: int = 5


@dataclass(frozen=True)
class Status:
    """An error status with an OpenAI-style error body, and optionally Retry-After."""

    code: int
    retry_after: str | None = None
    message: str = "fake error"


@dataclass(frozen=True)
class Hang:
    """Accept the request and never answer (until the fake closes)."""


@dataclass(frozen=True)
class Malformed:
    """A 200 whose body is cut-off JSON."""


Action = Reply | Status | Hang | Malformed


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival

    @property
    def is_planning(self) -> bool:
        return _is_planning(self.body)


def schema_name(body: dict[str, Any]) -> str:
    """The json_schema name a request's response_format asks for ("" when none)."""
    try:
        return str(body["response_format"]["json_schema"]["name"])
    except (KeyError, TypeError):
        return ""


def _is_planning(body: dict[str, Any]) -> bool:
    if "response_format" in body:
        return schema_name(body) in ("", "instructions")
    messages = body.get("messages") or [{}]
    return '"instructions"' in str(messages[-1].get("content", ""))


@dataclass
class FakeOpenAI:
    """The fake endpoint; use as a context manager (it starts a server thread)."""

    model: str = "fake-model"  # the name it reports, like a served model
    latency_s: float = 0.0
    # Answer 400 to any request carrying response_format, like endpoints without structured output.
    reject_response_format: bool = False
    default: Action = field(default_factory=Reply)
    answer: Callable[[str], str] = lambda instruction: f"Answer to: {instruction[:60]}"
    # Consulted first for every normal reply: the request body in, the content out, or None to
    # fall through to planning / `answer`. Tests use it for judge, evolution and topic prompts.
    # It may also return an Action (Status, Hang, Malformed, Reply) for that request: a fault
    # chosen by content holds whatever order concurrent requests arrive in (script() can't).
    respond: Callable[[dict[str, Any]], str | Action | None] | None = None
    # (certfile, keyfile): serve HTTPS with this certificate.
    tls: tuple[Path, Path] | None = None
    # What GET /v1/models lists (vLLM-style cards: id, root, parent); None: just `model`.
    models: list[dict[str, Any]] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self):
        self._queue: list[Action] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._planned = 0
        self._in_flight = 0
        self.max_in_flight = 0  # most chat requests being handled at once
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------

    def script(self, *actions: Action) -> None:
        """Answer the next len(actions) chat requests with these, in order."""
        with self._lock:
            self._queue.extend(actions)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/v1"

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def wait_quiet(self, quiet_s: float = 1.0, timeout_s: float = 15.0) -> None:
        """Return once no request has arrived for `quiet_s`.

        A client cancelled mid-request (a failed job's other workers) may already have sent
        bytes this server has not read yet; under load they are recorded late. Counting calls
        across a failure waits for those stragglers first.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                last = self.requests[-1].at if self.requests else 0.0
            if time.monotonic() - last >= quiet_s:
                return
            time.sleep(0.05)
        raise AssertionError(f"the fake endpoint was still receiving requests after {timeout_s:g}s")

    def start(self) -> FakeOpenAI:
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()  # releases hung requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- request handling (server threads) -------------------------------------------------

    def _next_action(self, body: dict[str, Any]) -> Action:
        with self._lock:
            if self.reject_response_format and "response_format" in body:
                return Status(400, message="response_format is not supported")
            return self._queue.pop(0) if self._queue else self.default

    def _content_for(self, body: dict[str, Any]) -> str:
        if self.respond is not None and (content := self.respond(body)) is not None:
            return content
        if _is_planning(body):
            count = _requested_count(body)
            with self._lock:
                start, self._planned = self._planned, self._planned + count
            items = [
                f"Task {n}: describe item number {n} in detail." for n in range(start + 1, start + count + 1)
            ]
            return json.dumps({"instructions": items})
        messages = body.get("messages") or [{}]
        return self.answer(str(messages[-1].get("content", "")))


def _requested_count(body: dict[str, Any]) -> int:
    try:
        return int(body["response_format"]["json_schema"]["schema"]["properties"]["instructions"]["maxItems"])
    except (KeyError, TypeError, ValueError):
        match = re.search(r"Write (\d+)", str((body.get("messages") or [{}])[-1].get("content", "")))
        return int(match.group(1)) if match else 5


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # many workers connect at once; the default backlog (5) drops SYNs


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do
        # Headers and body go out in separate writes; with Nagle on, each reply waits ~40 ms for an ACK.
        disable_nagle_algorithm = True

        def log_message(self, format, *args):
            pass

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                cards = fake.models if fake.models is not None else [{"id": "fake-model", "object": "model"}]
                self._send(200, {"object": "list", "data": cards})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {"error": {"message": "request body is not JSON"}})
                return
            with fake._lock:
                fake.requests.append(
                    RecordedRequest(self.path, dict(self.headers.items()), body, time.monotonic())
                )
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            with fake._lock:
                fake._in_flight += 1
                fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
            try:
                self._answer(fake._next_action(body), body)
            finally:
                with fake._lock:
                    fake._in_flight -= 1

        def _answer(self, action: Action, body: dict[str, Any]) -> None:
            if isinstance(action, Reply) and action.content is None and fake.respond is not None:
                chosen = fake.respond(body)
                if isinstance(chosen, (Reply, Status, Hang, Malformed)):
                    action = chosen
                elif chosen is not None:
                    action = replace(action, content=chosen)
            if fake.latency_s and fake._closed.wait(fake.latency_s):
                return
            if isinstance(action, Hang):
                fake._closed.wait()
                self.close_connection = True
                return
            if isinstance(action, Status):
                headers = {"Retry-After": action.retry_after} if action.retry_after is not None else {}
                self._send(
                    action.code,
                    {"error": {"message": action.message, "type": "fake", "code": action.code}},
                    headers=headers,
                )
                return
            if isinstance(action, Malformed):
                self._send_raw(200, b'{"id": "x", "choices": [{"message": {"content": "tru')
                return
            content = action.content if action.content is not None else fake._content_for(body)
            self._send(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "model": body.get("model", ""),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": action.prompt_tokens,
                        "completion_tokens": action.completion_tokens,
                        "total_tokens": action.prompt_tokens + action.completion_tokens,
                    },
                },
            )

        def _send(self, code: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            self._send_raw(code, json.dumps(payload).encode(), headers)

        def _send_raw(self, code: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeout, cancel)

    return Handler


@contextmanager
def fake_openai_process(
    *, latency_s: float, models: list[dict[str, Any]] | None = None, judge: bool = False
) -> Iterator[str]:
    """Run a default-behaviour fake in a child process; yields its base URL.

    judge=True: it also answers judge requests (see `judge_verdict`).
    """
    extra = ["--models", json.dumps(models)] if models is not None else []
    extra += ["--judge"] if judge else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_openai", "--latency", str(latency_s), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        if not line.startswith("http://"):
            raise RuntimeError(f"fake endpoint did not start: {line!r}")
        yield line.strip()
    finally:
        proc.terminate()
        proc.wait(10)


def judge_verdict(body: dict[str, Any]) -> str | None:
    """A `respond` hook: 4 on every criterion a "judgement" schema asks for; None for other requests."""
    if schema_name(body) != "judgement":
        return None
    criteria = [k for k in body["response_format"]["json_schema"]["schema"]["properties"] if k != "reason"]
    return json.dumps({"reason": "Fake verdict: sound and on topic.", **{c: 4 for c in criteria}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--models", type=json.loads, default=None, help="JSON list of /v1/models cards")
    parser.add_argument("--judge", action="store_true", help="answer judgement-schema requests with a verdict")
    args = parser.parse_args()
    respond = judge_verdict if args.judge else None
    fake = FakeOpenAI(latency_s=args.latency, models=args.models, respond=respond).start()
    print(fake.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()


if __name__ == "__main__":
    main()
