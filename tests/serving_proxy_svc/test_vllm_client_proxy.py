"""The vLLM client honours HTTP_PROXY and NO_PROXY from the environment (read once per target, not
on every call), and sends vLLM's token itself, never ~/.netrc credentials."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serving_proxy_svc.vllm_client import VllmClient

CARDS = [{"id": "base", "root": "/models/base"}, {"id": "a-v1", "root": "/adapters/a-v1", "parent": "base"}]


@contextmanager
def _answering(seen: list[tuple[str, str]]) -> Iterator[str]:
    """A loopback server that answers /v1/models (as vLLM, or as a forward proxy in front of one) and
    records (request target, Authorization) of each request."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization", "")))
            body = json.dumps({"object": "list", "data": CARDS}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy_env(monkeypatch, tmp_path):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    # A ~/.netrc entry for every host: the client must not send it (the token is vLLM's only credential).
    (tmp_path / ".netrc").write_text("default login netrc-user password netrc-password\n")
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    return monkeypatch


def _models(target: str, *, token: str = "", calls: int = 1) -> list[list[str]]:
    async def main():
        client = VllmClient(timeout_s=5, generation_timeout_s=5)
        try:
            return [[card.id for card in await client.models(target, token=token)] for _ in range(calls)]
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_calls_go_through_the_environments_http_proxy(proxy_env):
    seen: list[tuple[str, str]] = []
    with _answering(seen) as proxy:
        proxy_env.setenv("HTTP_PROXY", proxy)
        # vllm.invalid never resolves: only the proxy can have answered.
        assert _models("http://vllm.invalid:8000", token="vllm-token-123", calls=2) == [["base", "a-v1"]] * 2
    assert seen == [("http://vllm.invalid:8000/v1/models", "Bearer vllm-token-123")] * 2


def test_no_proxy_hosts_are_called_directly_and_netrc_is_never_sent(proxy_env):
    seen: list[tuple[str, str]] = []
    with _answering(seen) as vllm:
        proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        proxy_env.setenv("NO_PROXY", "127.0.0.1")
        assert _models(vllm) == [["base", "a-v1"]]
    assert seen == [("/v1/models", "")]
