"""Datagen settings: the only module that reads the environment.

Every variable, with its default:
- SYNTHTUNE_DATAGEN_LISTEN              127.0.0.1:50051  host:port the gRPC server binds
- SYNTHTUNE_DATAGEN_MAX_ROWS            100000           largest num_rows a job may ask for
- SYNTHTUNE_DATAGEN_MAX_CONCURRENCY     64               largest limits.concurrency a job may ask for
- SYNTHTUNE_DATAGEN_MAX_RUNNING_JOBS    4                jobs generating at once; later ones queue
- SYNTHTUNE_DATAGEN_RETRY_INITIAL_S     1.0              first backoff step after a retryable failure
- SYNTHTUNE_DATAGEN_RETRY_MAX_S         30.0             longest backoff step, and cap on Retry-After
- SYNTHTUNE_OUTBOUND_ALLOW              empty            networks / host names teacher and judge URLs are
                                                         limited to (empty: any not denied)
- SYNTHTUNE_OUTBOUND_DENY               empty            networks / host names refused on top of the built-in
                                                         link-local and metadata list (synthtune.outbound)
plus the shared SYNTHTUNE_* settings of synthtune.settings.CommonSettings.
"""

from __future__ import annotations

import math
import re

from pydantic import Field, field_validator, model_validator

from synthtune.outbound import OutboundSettings
from synthtune.settings import CommonSettings, SettingsError, env_alias
from synthtune.settings import load_settings as shared_load_settings

_LISTEN_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def _env(name: str):
    # Field names stay short (settings.listen) while the variable keeps its full name.
    return env_alias(name, name.removeprefix("SYNTHTUNE_DATAGEN_").lower())


class DatagenSettings(CommonSettings, OutboundSettings):
    """Frozen settings of the datagen service; construct with `load_settings()`."""

    listen: str = Field(
        default="127.0.0.1:50051",
        validation_alias=_env("SYNTHTUNE_DATAGEN_LISTEN"),
        description="host:port the gRPC server binds; port 0 picks a free one.",
    )
    max_rows: int = Field(
        default=100_000, ge=1, le=10_000_000, validation_alias=_env("SYNTHTUNE_DATAGEN_MAX_ROWS")
    )
    max_concurrency: int = Field(
        default=64, ge=1, le=1024, validation_alias=_env("SYNTHTUNE_DATAGEN_MAX_CONCURRENCY")
    )
    max_running_jobs: int = Field(
        default=4, ge=1, le=256, validation_alias=_env("SYNTHTUNE_DATAGEN_MAX_RUNNING_JOBS")
    )
    retry_initial_s: float = Field(
        default=1.0, gt=0, le=600, validation_alias=_env("SYNTHTUNE_DATAGEN_RETRY_INITIAL_S")
    )
    retry_max_s: float = Field(
        default=30.0, gt=0, le=3600, validation_alias=_env("SYNTHTUNE_DATAGEN_RETRY_MAX_S")
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        match = _LISTEN_RE.match(value)
        if not match or int(match.group(2)) > 65535:
            raise ValueError("SYNTHTUNE_DATAGEN_LISTEN must be host:port, e.g. 127.0.0.1:50051 or [::]:50051")
        return value

    @field_validator("retry_initial_s", "retry_max_s")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> DatagenSettings:
        if self.retry_initial_s > self.retry_max_s:
            raise ValueError(
                "SYNTHTUNE_DATAGEN_RETRY_INITIAL_S must not exceed SYNTHTUNE_DATAGEN_RETRY_MAX_S"
            )
        return self


def load_settings(**overrides) -> DatagenSettings:
    """Read the environment once (keyword overrides win, for tests); raise SettingsError if bad."""
    return shared_load_settings(DatagenSettings, **overrides)


__all__ = ["DatagenSettings", "SettingsError", "load_settings"]
