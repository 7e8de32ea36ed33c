"""Serving-proxy settings: the only module that reads the environment.

Every variable, with its default:
- SYNTHTUNE_SERVING_PROXY_LISTEN        127.0.0.1:50053  host:port the gRPC server binds
- SYNTHTUNE_VLLM_URL                    http://127.0.0.1:8000
                                        the default target: a vLLM base URL (a trailing /v1 is dropped)
- SYNTHTUNE_VLLM_REPLICAS               = SYNTHTUNE_VLLM_URL
                                        comma-separated vLLM base URLs that load and unload go to
- SYNTHTUNE_VLLM_ADAPTER_ROOT           <data root>/adapters, made absolute (vLLM on this machine)
                                        where vLLM itself sees the data root's adapters/ folder (its
                                        mount path in Kubernetes); load sends <this>/<adapter_name>
- SYNTHTUNE_VLLM_MAX_LORA_RANK          8      must equal vLLM's --max-lora-rank: vLLM does not report
                                               it anywhere, so the proxy cannot ask
- SYNTHTUNE_VLLM_TOKEN                  unset  default bearer token for vLLM's --api-key (a request's own
                                               token wins); never stored, never logged
- SYNTHTUNE_VLLM_TIMEOUT_S              30     timeout of /v1/models, load and unload calls
- SYNTHTUNE_VLLM_GENERATION_TIMEOUT_S   300    timeout of one completion call
- SYNTHTUNE_COMPARE_MAX_TOKENS          256    max_tokens of a comparison when the request sets none
- SYNTHTUNE_COMPARE_MAX_ROWS            1000   most rows one batch comparison reads
- SYNTHTUNE_OUTBOUND_ALLOW              empty  networks / host names a judge URL is limited to (empty: any
                                               not denied)
- SYNTHTUNE_OUTBOUND_DENY               empty  networks / host names refused on top of the built-in
                                               link-local and metadata list (synthtune.outbound)
plus the shared SYNTHTUNE_* settings of synthtune.settings.CommonSettings.

Only configured targets (SYNTHTUNE_VLLM_URL and the replicas) may be named in a
request: the proxy forwards tokens, so it must not call arbitrary URLs. The one URL
a request does name, a batch comparison's judge, passes the outbound policy
(SYNTHTUNE_OUTBOUND_*), unless it is one of those configured targets.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from synthtune.outbound import OutboundSettings
from synthtune.settings import CommonSettings, SettingsError, env_alias
from synthtune.settings import load_settings as _load


def normalize_target(url: str) -> str:
    """`url` as the proxy names targets: scheme://host[:port][/prefix], no trailing '/' or '/v1'.

    Raises ValueError for anything but an http(s) URL without query or fragment.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL such as http://127.0.0.1:8000")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{url!r} must not carry a query, a fragment or credentials")
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1").rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


class ProxySettings(CommonSettings, OutboundSettings):
    """Frozen settings of the serving proxy; construct with `load_settings()`."""

    listen: str = Field(default="127.0.0.1:50053",
                        validation_alias=env_alias("SYNTHTUNE_SERVING_PROXY_LISTEN", "listen"),
                        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
    vllm_url: str = Field(default="http://127.0.0.1:8000", validation_alias=env_alias("SYNTHTUNE_VLLM_URL", "vllm_url"))
    # A comma list in the environment; empty: just vllm_url.
    vllm_replicas_text: str = Field(default="", validation_alias=env_alias("SYNTHTUNE_VLLM_REPLICAS", "vllm_replicas"))
    vllm_adapter_root_text: str = Field(
        default="", validation_alias=env_alias("SYNTHTUNE_VLLM_ADAPTER_ROOT", "vllm_adapter_root"))
    vllm_max_lora_rank: int = Field(default=8, ge=1, le=1024,
                                    validation_alias=env_alias("SYNTHTUNE_VLLM_MAX_LORA_RANK", "vllm_max_lora_rank"))
    vllm_token: str = Field(default="", repr=False, validation_alias=env_alias("SYNTHTUNE_VLLM_TOKEN", "vllm_token"))
    vllm_timeout_s: float = Field(default=30.0, gt=0, le=3600,
                                  validation_alias=env_alias("SYNTHTUNE_VLLM_TIMEOUT_S", "vllm_timeout_s"))
    vllm_generation_timeout_s: float = Field(
        default=300.0, gt=0, le=3600,
        validation_alias=env_alias("SYNTHTUNE_VLLM_GENERATION_TIMEOUT_S", "vllm_generation_timeout_s"))
    compare_max_tokens: int = Field(default=256, ge=1, le=32768,
                                    validation_alias=env_alias("SYNTHTUNE_COMPARE_MAX_TOKENS", "compare_max_tokens"))
    compare_max_rows: int = Field(default=1000, ge=1, le=100_000,
                                  validation_alias=env_alias("SYNTHTUNE_COMPARE_MAX_ROWS", "compare_max_rows"))

    @field_validator("vllm_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return normalize_target(value)

    @field_validator("vllm_replicas_text")
    @classmethod
    def _replicas(cls, value: str) -> str:
        urls = [normalize_target(part) for part in value.split(",") if part.strip()]
        return ",".join(dict.fromkeys(urls))

    @field_validator("vllm_adapter_root_text")
    @classmethod
    def _adapter_root(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith("/"):
            raise ValueError("must be an absolute path: the adapters/ folder as vLLM sees it")
        return value.rstrip("/") or ("/" if value else "")

    @field_validator("vllm_timeout_s", "vllm_generation_timeout_s")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @model_validator(mode="after")
    def _token_is_not_blank(self) -> ProxySettings:
        if self.vllm_token != self.vllm_token.strip():
            raise ValueError("SYNTHTUNE_VLLM_TOKEN must not start or end with whitespace")
        return self

    @property
    def replicas(self) -> tuple[str, ...]:
        """Where load and unload go when a request names no targets."""
        return tuple(self.vllm_replicas_text.split(",")) if self.vllm_replicas_text else (self.vllm_url,)

    # Computed once (the settings are frozen): every call reads them, and resolve() is a stat per part.
    @cached_property
    def known_targets(self) -> tuple[str, ...]:
        """Every target a request may name: the default, then the replicas."""
        return tuple(dict.fromkeys((self.vllm_url, *self.replicas)))

    @cached_property
    def adapters_dir(self) -> Path:
        """The data root's adapters/ folder, as this process sees it."""
        return (Path(self.data_root) / "adapters").resolve()

    @cached_property
    def vllm_adapter_root(self) -> str:
        """The adapters/ folder as vLLM sees it (default: the local absolute path)."""
        return self.vllm_adapter_root_text or str(self.adapters_dir)


def load_settings(**overrides) -> ProxySettings:
    """Read the environment once (keyword overrides win, for tests); raise SettingsError if bad."""
    return _load(ProxySettings, **overrides)


__all__ = ["ProxySettings", "SettingsError", "load_settings", "normalize_target"]
