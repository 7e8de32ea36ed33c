"""Control-plane settings: the only module that reads the environment.

Every variable, with its default:
- SYNTHTUNE_DATA_ROOT           ./var               shared data root (datasets/, runs/, adapters/)
- SYNTHTUNE_GRPC_TOKEN          (none)              bearer token for the services; calls fail with 503 until set
- SYNTHTUNE_GRPC_TLS_CA         (none)              PEM CA bundle; when set, gRPC channels use TLS
- SYNTHTUNE_GRPC_TIMEOUT_S      10                  deadline of every unary gRPC call
- SYNTHTUNE_DATAGEN_ADDR        127.0.0.1:50051     host:port of the datagen service
- SYNTHTUNE_TRAINER_ADDR        127.0.0.1:50052     host:port of the trainer service
- SYNTHTUNE_SERVING_PROXY_ADDR  127.0.0.1:50053     host:port of the serving proxy (vLLM adapters, compare)
- SYNTHTUNE_RECONCILE_S         15                  how often the worker checks deployments against vLLM
- SYNTHTUNE_LOG_LEVEL           INFO                DEBUG, INFO, WARNING or ERROR
- SYNTHTUNE_WORKER_POLL_S       1.0                 how often the worker looks for unfinished jobs
- SYNTHTUNE_WORKER_BACKOFF_MAX_S 30                 longest wait between reconnects to a service that is down
- SYNTHTUNE_SSE_POLL_S          0.02                how often an event stream (SSE) looks for new events
- SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS false            true: the old Flask app's routes (/generate_data...)
                                                    answer without a login, for old clients; off by default
- SYNTHTUNE_UPLOAD_MAX_BYTES    268435456 (256 MiB) largest uploaded file (multipart); larger: 413
- SYNTHTUNE_BODY_MAX_BYTES      67108864 (64 MiB)   largest request body that is not a file (JSON, form fields),
                                                    Django's DATA_UPLOAD_MAX_MEMORY_SIZE; larger: 413
- SYNTHTUNE_THROTTLE_USER       6000/min            API calls per user (N/s, N/min, N/hour, N/day); off or empty: no limit
- SYNTHTUNE_THROTTLE_ANON       600/min             API calls per address from callers without a login (the old routes
                                                    with SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS); off or empty: no limit
- SYNTHTUNE_TRUSTED_PROXIES     0                   reverse proxies in front that append to X-Forwarded-For; 0: the
                                                    peer address tells anonymous callers apart (the header is ignored)
- SYNTHTUNE_DEFAULT_ADAPTER_NAME (none)             stem of the adapter name (<stem>-v<N>) of runs that name none
- SYNTHTUNE_METRICS_PORT        0                   the worker's Prometheus /metrics port; 0: off
- SYNTHTUNE_METRICS_HOST        0.0.0.0             address the worker's /metrics binds
- SYNTHTUNE_METRICS_TOKEN       (none)              set (16+ characters): the web's /metrics wants it as a bearer token
- SYNTHTUNE_VLLM_TOKEN          (none)              vLLM's --api-key, sent by /v1/chat/completions and /v1/completions
                                                    when they relay to vLLM (the serving proxy's variable of the same
                                                    name: give both the same value); never stored or logged
- SYNTHTUNE_OPENAI_AUTOLOAD     true                /v1/ inference naming a known adapter that no vLLM serves loads it
                                                    first (as POST /api/v1/adapters/<name>/load/); false: a 404 that
                                                    says how to load it
- DATABASE_URL                  sqlite:///<data root>/control_plane.sqlite3   any dj-database-url URL
- DJANGO_SECRET_KEY             (generated)         unset: a random key is created once in
                                                    <data root>/.django-secret-key (mode 0600) and reused
- DJANGO_DEBUG                  false
- DJANGO_ALLOWED_HOSTS          localhost,127.0.0.1,[::1]   comma-separated
- DJANGO_CSRF_TRUSTED_ORIGINS   (none)              comma-separated, e.g. https://synthtune.example.com
- DJANGO_STATIC_ROOT            (none)              where `collectstatic` writes; unset, WhiteNoise serves
                                                    straight from the apps (fine at this scale)
The old Flask app's DATA_DIR, FINETUNE_ROOT and ADAPTER_EXPORT_DIR are read as aliases of
SYNTHTUNE_DATA_ROOT (synthtune.settings.OldFolderVariables), DEFAULT_ADAPTER_NAME as one of
SYNTHTUNE_DEFAULT_ADAPTER_NAME; the SYNTHTUNE_ name wins when both are set.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from synthtune.errors import SynthtuneError
from synthtune.paths import validate_name
from synthtune.settings import OldFolderVariables, settings_problems

_ADDR_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}
# DRF's rate syntax (it reads the period's first letter only, so "5/mango" would be 5 a minute).
_RATE_RE = re.compile(r"^([1-9][0-9]*)/(s|sec|second|m|min|minute|h|hour|d|day)$")
_RATE_OFF = {"", "off", "none", "0"}


def _env(name: str) -> AliasChoices:
    # Field names stay short for keyword overrides; the variable keeps its full name.
    return AliasChoices(name, name.lower())


class ControlPlaneConfig(OldFolderVariables, BaseSettings):
    """Frozen settings read once from the environment; use `load_config()`."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", validate_by_name=True)

    data_root: Path = Field(default=Path("./var"), validation_alias=_env("SYNTHTUNE_DATA_ROOT"))
    grpc_token: str = Field(default="", validation_alias=_env("SYNTHTUNE_GRPC_TOKEN"))
    grpc_tls_ca: Path | None = Field(default=None, validation_alias=_env("SYNTHTUNE_GRPC_TLS_CA"))
    grpc_timeout_s: float = Field(
        default=10.0, gt=0, le=600, validation_alias=_env("SYNTHTUNE_GRPC_TIMEOUT_S")
    )
    datagen_addr: str = Field(default="127.0.0.1:50051", validation_alias=_env("SYNTHTUNE_DATAGEN_ADDR"))
    trainer_addr: str = Field(default="127.0.0.1:50052", validation_alias=_env("SYNTHTUNE_TRAINER_ADDR"))
    serving_proxy_addr: str = Field(
        default="127.0.0.1:50053", validation_alias=_env("SYNTHTUNE_SERVING_PROXY_ADDR")
    )
    reconcile_s: float = Field(default=15.0, gt=0, le=3600, validation_alias=_env("SYNTHTUNE_RECONCILE_S"))
    log_level: str = Field(default="INFO", validation_alias=_env("SYNTHTUNE_LOG_LEVEL"))
    worker_poll_s: float = Field(default=1.0, gt=0, le=60, validation_alias=_env("SYNTHTUNE_WORKER_POLL_S"))
    worker_backoff_max_s: float = Field(
        default=30.0, gt=0, le=3600, validation_alias=_env("SYNTHTUNE_WORKER_BACKOFF_MAX_S")
    )
    sse_poll_s: float = Field(default=0.02, ge=0.005, le=10, validation_alias=_env("SYNTHTUNE_SSE_POLL_S"))
    legacy_allow_anonymous: bool = Field(
        default=False, validation_alias=_env("SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS")
    )
    upload_max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, validation_alias=_env("SYNTHTUNE_UPLOAD_MAX_BYTES")
    )
    body_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, validation_alias=_env("SYNTHTUNE_BODY_MAX_BYTES"))
    # Generous: a guard against a runaway client, not a quota (each process counts alone).
    throttle_user: str = Field(default="6000/min", validation_alias=_env("SYNTHTUNE_THROTTLE_USER"))
    throttle_anon: str = Field(default="600/min", validation_alias=_env("SYNTHTUNE_THROTTLE_ANON"))
    # How long a good API token is taken on trust without the database (core.authentication); 0: off.
    # A revoked token keeps working in other processes for up to this long.
    token_cache_s: float = Field(default=5.0, ge=0, le=300, validation_alias=_env("SYNTHTUNE_TOKEN_CACHE_S"))
    trusted_proxies: int = Field(default=0, ge=0, le=10, validation_alias=_env("SYNTHTUNE_TRUSTED_PROXIES"))
    default_adapter_name: str = Field(
        default="",
        max_length=100,  # the trainer appends "-v<N>" within 128 characters
        validation_alias=AliasChoices(*_env("SYNTHTUNE_DEFAULT_ADAPTER_NAME").choices, "DEFAULT_ADAPTER_NAME"),
    )
    # The worker's /metrics port (0: off); the web process serves /metrics on its own HTTP port.
    metrics_port: int = Field(default=0, ge=0, le=65535, validation_alias=_env("SYNTHTUNE_METRICS_PORT"))
    metrics_host: str = Field(default="0.0.0.0", min_length=1, validation_alias=_env("SYNTHTUNE_METRICS_HOST"))
    # Set: the web's /metrics wants "Authorization: Bearer <it>" (the HTTP port may face the outside).
    metrics_token: str = Field(default="", repr=False, pattern=r"^(|.{16,})$",
                               validation_alias=_env("SYNTHTUNE_METRICS_TOKEN"))
    # vLLM's API key for the /v1/ inference relay: the serving proxy's SYNTHTUNE_VLLM_TOKEN.
    vllm_token: str = Field(default="", repr=False, validation_alias=_env("SYNTHTUNE_VLLM_TOKEN"))
    openai_autoload: bool = Field(default=True, validation_alias=_env("SYNTHTUNE_OPENAI_AUTOLOAD"))
    database_url: str = Field(default="", validation_alias=_env("DATABASE_URL"))
    secret_key: str = Field(default="", validation_alias=_env("DJANGO_SECRET_KEY"))
    debug: bool = Field(default=False, validation_alias=_env("DJANGO_DEBUG"))
    allowed_hosts: str = Field(
        default="localhost,127.0.0.1,[::1]", validation_alias=_env("DJANGO_ALLOWED_HOSTS")
    )
    csrf_trusted_origins: str = Field(default="", validation_alias=_env("DJANGO_CSRF_TRUSTED_ORIGINS"))
    static_root: Path | None = Field(default=None, validation_alias=_env("DJANGO_STATIC_ROOT"))

    @field_validator("grpc_token")
    @classmethod
    def _token_not_trivial(cls, value: str) -> str:
        # Empty is allowed so the admin and migrations work without services; calls then fail clearly.
        if value and len(value) < 16:
            raise ValueError("must be at least 16 characters (the services refuse shorter ones)")
        return value

    @field_validator("vllm_token")
    @classmethod
    def _token_is_not_padded(cls, value: str) -> str:
        # As the serving proxy checks it: a pasted newline would make every relayed call 401.
        if value != value.strip():
            raise ValueError("must not start or end with whitespace")
        return value

    @field_validator("throttle_user", "throttle_anon")
    @classmethod
    def _rate(cls, value: str) -> str:
        value = value.strip().lower()
        if value in _RATE_OFF:
            return ""
        if not _RATE_RE.match(value):
            raise ValueError("must be N/s, N/min, N/hour or N/day (e.g. 600/min), or off")
        return value

    @field_validator("datagen_addr", "trainer_addr", "serving_proxy_addr")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not _ADDR_RE.match(value):
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051")
        return value

    @field_validator("default_adapter_name")
    @classmethod
    def _adapter_stem(cls, value: str) -> str:
        if value:
            try:
                validate_name(value, field="SYNTHTUNE_DEFAULT_ADAPTER_NAME")
            except SynthtuneError as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("secret_key")
    @classmethod
    def _strong_key(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters; leave it unset to have one generated")
        return value

    @property
    def allowed_hosts_list(self) -> list[str]:
        return _split(self.allowed_hosts)

    @property
    def csrf_trusted_origins_list(self) -> list[str]:
        return _split(self.csrf_trusted_origins)


class ConfigError(Exception):
    """Bad environment; the message names each variable and never echoes its value."""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@lru_cache(maxsize=1)
def load_config() -> ControlPlaneConfig:
    try:
        return ControlPlaneConfig()
    except ValidationError as exc:
        # pydantic's own text echoes the input, which may be a secret.
        raise ConfigError("bad control-plane settings: " + settings_problems(ControlPlaneConfig, exc)) from None


def secret_key(config: ControlPlaneConfig) -> str:
    """DJANGO_SECRET_KEY, or a random key kept in <data root>/.django-secret-key.

    Why a file: a fresh clone must run with no set-up, without a well-known key
    that would let anyone forge sessions, and the web process and the worker
    (started at once) must agree. The first process to get there wins the link().
    """
    if config.secret_key:
        return config.secret_key
    path = config.data_root / ".django-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".django-secret-key.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
            os.link(tmp, path)  # fails if another process created it first; theirs is kept
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()
