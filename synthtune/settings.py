"""Settings every service shares. Each service's config.py extends these.

Read once from the environment into a frozen object; bad values fail at start.
The README lists every variable with its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The old Flask app's folder variables and the data-root folder each names (DESIGN.md §3:
# one data root holds datasets/, runs/ and adapters/). DATA_DIR, where it wrote datasets,
# is the root itself; FINETUNE_ROOT and ADAPTER_EXPORT_DIR must be <root>/runs and <root>/adapters.
OLD_FOLDER_VARIABLES = {"DATA_DIR": "", "FINETUNE_ROOT": "runs", "ADAPTER_EXPORT_DIR": "adapters"}
_ROOT_KEYS = ("data_root", "SYNTHTUNE_DATA_ROOT", "synthtune_data_root")


def data_root_from_old_folders(values: Mapping[str, Any]) -> Path | None:
    """The data root the old app's DATA_DIR / FINETUNE_ROOT / ADAPTER_EXPORT_DIR imply (None when
    none is set). Raises ValueError, naming the variable, for a FINETUNE_ROOT or ADAPTER_EXPORT_DIR
    that isn't a runs/ or adapters/ folder, or when the set ones imply different roots: synthtune
    keeps one root, so a folder elsewhere would silently not be used."""
    implied: dict[str, tuple[str, Path]] = {}
    for variable, folder in OLD_FOLDER_VARIABLES.items():
        raw = str(values.get(variable) or "").strip()
        if not raw:
            continue
        path = Path(raw)
        if folder:
            if path.name != folder:
                raise ValueError(
                    f"{variable}={raw} can't be honoured: synthtune keeps it as <data root>/{folder}, so "
                    f"{variable} must name a folder called {folder!r} (its parent becomes the data root); "
                    "or set SYNTHTUNE_DATA_ROOT instead"
                )
            path = path.parent
        implied[variable] = (raw, path)
    if len({str(path.resolve()) for _, path in implied.values()}) > 1:
        named = ", ".join(f"{variable}={raw} means root {path}" for variable, (raw, path) in implied.items())
        raise ValueError(
            f"the old folder variables imply different data roots ({named}); synthtune keeps one root "
            "with datasets/, runs/ and adapters/ in it: make them agree, or set SYNTHTUNE_DATA_ROOT"
        )
    return next((path for _, path in implied.values()), None)


class OldFolderVariables(BaseModel):
    """Mixin: the old app's DATA_DIR, FINETUNE_ROOT and ADAPTER_EXPORT_DIR as aliases of the data
    root. SYNTHTUNE_DATA_ROOT (or a data_root override) wins when set; they are then ignored."""

    old_data_dir: str = Field(default="", exclude=True, repr=False, validation_alias=AliasChoices("DATA_DIR"))
    old_finetune_root: str = Field(default="", exclude=True, repr=False, validation_alias=AliasChoices("FINETUNE_ROOT"))
    old_adapter_export_dir: str = Field(
        default="", exclude=True, repr=False, validation_alias=AliasChoices("ADAPTER_EXPORT_DIR")
    )

    @model_validator(mode="before")
    @classmethod
    def _data_root_from_old_folders(cls, data: Any) -> Any:
        if not isinstance(data, dict) or any(data.get(key) not in (None, "") for key in _ROOT_KEYS):
            return data
        root = data_root_from_old_folders(data)
        return data if root is None else {**data, "data_root": root}


class CommonSettings(OldFolderVariables, BaseSettings):
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
        raise SettingsError("bad settings: " + settings_problems(cls, exc)) from None


def settings_problems(cls: type[BaseSettings], exc: ValidationError) -> str:
    """Each bad variable in `exc`, by its environment name, "; "-joined; never an input value.

    No "NAME: message" form: for a *_TOKEN variable, log redaction would take the message's
    first word for the token and mask it.
    """
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        field = ".".join(str(part) for part in error["loc"])
        variable = _variable(cls, field) if field else ""
        problems.append(message if not variable or variable in message else f"{variable} is invalid ({message})")
    return "; ".join(problems)


def _variable(cls: type[BaseSettings], field: str) -> str:
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if field.isupper():
        return field
    return f"SYNTHTUNE_{field.upper()}"
