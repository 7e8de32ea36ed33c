"""Django's LOGGING_CONFIG hook: JSON logs through synthtune.logs, configured once."""

from __future__ import annotations

from synthtune.logs import configure_logging


def configure(options: dict) -> None:
    configure_logging(options.get("service", "control_plane"), level=options.get("level", "INFO"))
