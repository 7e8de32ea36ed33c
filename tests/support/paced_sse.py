"""A vLLM stand-in that streams chat chunks at a fixed pace, for timing stream relays exactly.

The real CPU vLLM's own pace jitters with the machine's load (it often sends a burst of tokens
at once), so whether a relay passes each chunk on as it comes is timed against this instead:
GET /v1/models lists `slow-model`; POST /v1/chat/completions answers `pieces` chunks ("0 ",
"1 ", ...) `gap_s` apart, then [DONE]. `aborted` is set when the reader went away mid-stream.

    with PacedStream() as paced:
        ... a serving proxy with SYNTHTUNE_VLLM_URL (or a replica) = paced.url ...
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

MODEL = "slow-model"


class PacedStream(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, *, pieces: int = 6, gap_s: float = 0.25):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pieces, self.gap_s = pieces, gap_s
        self.aborted = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def stream_s(self) -> float:
        """How long one stream takes to send."""
        return self.pieces * self.gap_s

    def text(self) -> str:
        """What one stream says, joined."""
        return "".join(f"{n} " for n in range(self.pieces))

    def __enter__(self) -> Self:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection does
    server: PacedStream

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "root": MODEL}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for n in range(self.server.pieces):
                choice = {"index": 0, "delta": {"content": f"{n} "}, "finish_reason": None}
                chunk = {"id": "paced", "object": "chat.completion.chunk", "created": int(time.time()),
                         "model": MODEL, "choices": [choice]}  # fmt: skip
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(self.server.gap_s)
            self.wfile.write(b"data: [DONE]\n\n")
        except OSError:
            self.server.aborted.set()
