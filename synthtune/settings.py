"""Settings every service shares. Each service's config.py extends these.

Read once from the environment into a frozen object; bad values fail at start.
The README lists every variable with its default.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_prefix="SYNTHTUNE_")

    data_root: Path = Field(default=Path("./var"), description="Folder holding datasets/, runs/, adapters/.")
    grpc_token: str = Field(repr=False, description="Shared bearer token every gRPC call must carry.")
    log_level: str = "INFO"
    grpc_tls_cert: Path | None = Field(default=None, description="PEM certificate; enables TLS with the key.")
    grpc_tls_key: Path | None = None
    grpc_shutdown_grace_s: float = Field(default=10.0, ge=0)

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
