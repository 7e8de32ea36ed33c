"""Small helpers shared by the control-plane tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from control_plane.datasets.models import GenerationJob
from control_plane.datasets.worker import GenerationFollower

INSTRUCTION_ROWS = [
    {"instruction": "Say hello.", "output": "Hello!"},
    {"instruction": "Add 2 and 2.", "input": "", "output": "4"},
    {"instruction": "Name a colour.", "system": "Be brief.", "output": "Blue."},
]
CHAT_ROWS = [
    {"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"}]},
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
        ]
    },
]


def jsonl(rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def wait_for(predicate: Callable[[], object], *, timeout_s: float = 30.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def follow_to_end(job_id: str) -> GenerationJob:
    """Do the worker's job in-process: consume the stream until the job finishes."""
    follower = GenerationFollower()
    for _ in range(20):  # a stream also ends at its deadline; then the worker reconnects
        follower.follow(job_id)
        job = GenerationJob.objects.get(job_id=job_id)
        if job.is_finished:
            return job
    raise AssertionError(f"job {job_id} did not finish")


def generate_body(teacher=None, **overrides) -> dict:
    """A from_instructions request against `teacher` (anything with .base_url and .model);
    without one, an address nothing listens on (for requests that must fail before any call)."""
    body = {
        "name": "support",
        "base_url": teacher.base_url if teacher else "http://127.0.0.1:9/v1",
        "model": teacher.model if teacher else "unused",
        "max_tokens": 32,
        "token": "endpoint-token-123456",
        "mode": "from_instructions",
        "instructions": ["Explain DNS.", "Explain TCP.", "Explain UDP.", "Explain TLS."],
        "concurrency": 2,
    }
    body.update(overrides)
    return body


def assert_error_body(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    body = response.json()
    assert set(body) == {"message", "code", "extra"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    return body
