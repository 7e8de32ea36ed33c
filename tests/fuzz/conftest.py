"""The gRPC fuzz's counts (requests, time, codes per service) in pytest's summary."""

from __future__ import annotations

SUMMARY: list[str] = []  # filled by test_grpc_fuzz's module fixture when its services stop


def pytest_terminal_summary(terminalreporter) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)
