import io
import json
import logging

from synthtune.logs import REDACTED, configure_logging, redact, register_secret, request_id_var


def _log_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_service_and_request_id_and_hide_secrets():
    stream = io.StringIO()
    configure_logging("unit", stream=stream)
    canary = "canary-secret-7f3a9c"
    register_secret(canary)
    token = request_id_var.set("rid-123")
    try:
        logger = logging.getLogger("t")
        logger.info("calling with Bearer sk-live-abcdef and %s", canary, extra={"bearer_token": "xyz", "n": 3})
        logger.info("body", extra={"payload": {"token": "t0k3n-value", "nested": [{"authorization": "a"}]}})
    finally:
        request_id_var.reset(token)
    first, second = _log_lines(stream)
    assert first["service"] == "unit" and first["request_id"] == "rid-123" and first["n"] == 3
    assert "sk-live-abcdef" not in stream.getvalue() and canary not in stream.getvalue()
    assert first["bearer_token"] == REDACTED
    assert second["payload"] == {"token": REDACTED, "nested": [{"authorization": REDACTED}]}


def test_redact_scrubs_inline_token_assignments():
    assert redact('{"api_key": "abc123"}') == '{"api_key": "[REDACTED]"}'
    assert redact({"event": "click", "payload": {"ft_token": "x"}}) == {"event": "click", "payload": {"ft_token": REDACTED}}
