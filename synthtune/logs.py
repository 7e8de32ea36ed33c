"""JSON logging with secrets redacted, configured once at start-up.

Every record carries `service` and, inside a request, `request_id` and `rpc`.
Redaction works three ways, so a token can't leak by accident:
- values under secret-looking keys in `extra` are replaced;
- `Bearer <token>` and `token=<value>` patterns in messages are masked;
- values registered with `register_secret` are masked wherever they appear.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import threading
from typing import Any

from pythonjsonlogger.json import JsonFormatter

REDACTED = "[REDACTED]"
SECRET_KEY_RE = re.compile(r"authorization|token|secret|password|api[_-]?key", re.IGNORECASE)
_INLINE_SECRET_RE = re.compile(
    r"(?i)(bearer\s+|(?:token|api[_-]?key|password|secret)[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"
)

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
rpc_var: contextvars.ContextVar[str] = contextvars.ContextVar("rpc", default="")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Mask `value` in every later log line. Short values are ignored (too many false hits)."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def forget_secret(value: str) -> None:
    with _secrets_lock:
        _secrets.discard(value)


def redact_text(text: str) -> str:
    text = _INLINE_SECRET_RE.sub(lambda m: m.group(1) + REDACTED, text)
    with _secrets_lock:
        known = list(_secrets)
    for secret in known:
        text = text.replace(secret, REDACTED)
    return text


def redact(value: Any) -> Any:
    """Redacted copy of a JSON-like value: secret keys masked, strings scrubbed."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and SECRET_KEY_RE.search(k) and v else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class _RedactingJsonFormatter(JsonFormatter):
    def __init__(self, service: str):
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time"},
        )
        self.service = service

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["service"] = self.service
        if rid := request_id_var.get():
            log_record.setdefault("request_id", rid)
        if rpc := rpc_var.get():
            log_record.setdefault("rpc", rpc)
        for key in list(log_record):
            log_record[key] = (
                REDACTED if SECRET_KEY_RE.search(key) and log_record[key] else redact(log_record[key])
            )


def configure_logging(service: str, level: str = "INFO", stream=None) -> None:
    """Send JSON lines to stdout (or `stream`). Call once, at process start."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_RedactingJsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs full URLs at INFO; keep it quiet so query-string secrets can't slip out.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
