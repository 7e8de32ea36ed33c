"""Settings every service shares. Each service's config.py extends these.

Read once from the environment into a frozen object; bad values fail at start.
The README lists every variable with its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_prefix="SYNTHTUNE_", validate_by_name=True)

    data_root: Path = Field(default=Path("./var"), description="Folder holding datasets/, runs/, adapters/.")
    grpc_token: str = Field(repr=False, description="Shared bearer token every gRPC call must carry.")
    log_level: str = "INFO"
    grpc_tls_cert: Path | None = Field(default=None, description="PEM certificate; enables TLS with the key.")
    grpc_tls_key: Path | None = None
    grpc_shutdown_grace_s: float = Field(default=10.0, ge=0)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus /metrics HTTP port; 0: off.")
    metrics_host: str = Field(default="0.0.0.0", min_length=1, description="Address the /metrics endpoint binds.")

    @field_validator("grpc_token")
    @classmethod
    def _token_not_trivial(cls, value: str) -> str:
        if len(value) < 16:
            raise ValueError("SYNTHTUNE_GRPC_TOKEN must be at least 16 characters")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("SYNTHTUNE_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()


S = TypeVar("S", bound=BaseSettings)


class SettingsError(Exception):
    """Bad environment; the message names each variable and never echoes its value."""


def env_alias(variable: str, short: str) -> AliasChoices:
    """Read `variable` from the environment while the field keeps a short name for overrides."""
    return AliasChoices(variable, short)


def load_settings(cls: type[S], **overrides) -> S:
    """Read the environment once into `cls` (keyword overrides win, for tests).

    Raises SettingsError naming each bad variable; pydantic's own text would
    echo input values, which may be the gRPC token.
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(part) for part in error["loc"])
            problems.append(f"{_variable(cls, field)}: {error['msg']}" if field else error["msg"])
        raise SettingsError("bad settings: " + "; ".join(problems)) from None


def _variable(cls: type[BaseSettings], field: str) -> str:
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if field.isupper():
        return field
    return f"SYNTHTUNE_{field.upper()}"
