"""/event_log in-process: what reaches the log record (the stack test reads the real log file)."""

from __future__ import annotations

import logging

import pytest

from control_plane.legacy.apis import EVENT_PAYLOAD_MAX_CHARS

pytestmark = pytest.mark.django_db


def ui_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "control_plane.legacy.apis" and r.getMessage() == "ui event"]


def test_the_payload_is_redacted_and_a_huge_one_is_not_logged(api, caplog):
    caplog.set_level(logging.INFO, logger="control_plane.legacy.apis")
    payload = {"base_token": "abc-secret-123", "items": [{"Authorization": "Bearer xyz-secret-456"}], "n": 1}
    assert api.post("/event_log", {"event": "compare", "payload": payload}, format="json").json() == {"status": "ok"}
    [record] = ui_records(caplog)
    assert record.event == "ui:compare"
    assert record.payload == {"base_token": "[REDACTED]", "items": [{"Authorization": "[REDACTED]"}], "n": 1}

    caplog.clear()
    huge = {"text": "x" * (EVENT_PAYLOAD_MAX_CHARS + 1)}
    assert api.post("/event_log", {"payload": huge}, format="json").json() == {"status": "ok"}
    [record] = ui_records(caplog)
    assert record.event == "ui:unknown" and "x" * 100 not in str(record.payload)
    assert "characters of JSON" in record.payload["omitted"]
