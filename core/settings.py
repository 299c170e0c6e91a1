"""Process settings: where things are and how to reach them (``BATON_*`` environment variables).

Behaviour (routing rules, brand voice, prices) lives in the TOML policy file instead; see
:mod:`core.policy`. Settings are read once by the composition root and passed down.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError


def default_data_dir() -> Path:
    """``~/.baton``: the embedded SQLite database and the assembled default model live here."""
    return Path.home() / ".baton"


MIN_RETENTION_DAYS = 7.0  # dedupe keys outlive every platform's retries (reliability.md)
_DURATION = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def iso_duration_days(text: str) -> float:
    """An ISO 8601 duration (``P1D``, ``PT12H``, ``P1W2D``) in days; ValueError if it is not one."""
    m = _DURATION.fullmatch(text.strip().upper())
    if m is None or not any(m.groups()) or text.strip().upper().endswith("T"):
        raise ValueError(f"not an ISO 8601 duration such as P1D or PT12H: {text!r}")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return weeks * 7 + days + hours / 24 + minutes / 1440 + seconds / 86400


class Settings(BaseSettings):
    """All ``BATON_*`` settings. Build with :func:`load_settings` to get a readable error."""

    model_config = SettingsConfigDict(env_prefix="BATON_", extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    config: Path | None = None
    database_url: str | None = None

    model_path: Path | None = None
    model_sha256: str | None = None
    llama_threads: int = Field(default=2, ge=1, le=256)
    llama_n_ctx: int = Field(default=4096, ge=512, le=131072)
    llama_n_batch: int = Field(default=512, ge=32, le=8192)
    llama_lora_path: Path | None = None
    llama_parallel: int = Field(default=8, ge=1, le=64)
    llama_seed: int = 42

    openai_api_key: SecretStr = SecretStr("")
    openai_base_url: str | None = None
    openai_timeout: float = Field(default=60.0, gt=0)
    openai_max_retries: int = Field(default=3, ge=0, le=10)
    openai_max_retry_wait: float = Field(default=120.0, ge=0)

    # Web gateway and jobs
    queue_url: str | None = None
    # How many proxies of yours stand in front of Baton (0: none). Forwarded headers are read
    # from the right, that many hops in: what is further left, the client wrote.
    trusted_proxy: int = Field(default=0, ge=0, le=10)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    # "problems": a log line for 4xx/5xx and slow responses only (every request is counted in
    # /metrics and every delivery is in the inbox); "all": a line for every request
    access_log: Literal["problems", "all"] = "problems"
    # Bearer token that /metrics requires (empty: open, for a scraper on a private network)
    metrics_token: SecretStr = SecretStr("")
    web_workers: int = Field(default=2, ge=1, le=64)
    web_threads: int = Field(default=4, ge=1, le=64)
    worker_threads: int = Field(default=2, ge=1, le=64)
    job_lease_seconds: int = Field(default=300, ge=1)
    reconcile_seconds: float = Field(default=30.0, gt=0)
    redispatch_seconds: float = Field(default=60.0, gt=0)
    dispatch_poll_seconds: float = Field(default=0.05, gt=0, le=10)
    # Encrypts platform tokens at rest (a Fernet key); empty: a key file in the data directory
    secret_key: SecretStr = SecretStr("")
    # Days after which dedupe keys, ended jobs (payloads, drafts), write-back records and reply
    # rows are purged; at least 7, and a day past the HubSpot BLOCK expiry
    retention_days: float = Field(default=30.0, gt=0, le=3650)

    @staticmethod
    def secrets_of(value: SecretStr) -> list[str]:
        """A comma-separated secret setting as a list (several during a key rotation)."""
        return [s.strip() for s in value.get_secret_value().split(",") if s.strip()]

    @staticmethod
    def list_of(value: str) -> list[str]:
        """A comma-separated setting as a list."""
        return [s.strip() for s in value.split(",") if s.strip()]

    @field_validator("model_sha256")
    @classmethod
    def _sha256_is_hex(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("expected 64 lowercase hex characters")
        return value

    @field_validator("trusted_proxy", mode="before")
    @classmethod
    def _proxy_count(cls, value: object) -> object:
        """``true``/``false`` (the old boolean) mean one proxy and none."""
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on"):
            return 1
        if isinstance(value, str) and value.strip().lower() in ("false", "no", "off", ""):
            return 0
        return value

    @model_validator(mode="after")
    def _retention_outlives_dedupe(self) -> Settings:
        if self.retention_days < MIN_RETENTION_DAYS:
            raise ValueError(f"BATON_RETENTION_DAYS: at least {MIN_RETENTION_DAYS:g} days, so that "
                             "dedupe keys outlive every platform's retries "
                             f"(got {self.retention_days:g})")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: ``BATON_DATABASE_URL`` or SQLite under the data directory."""
        url = self.database_url or f"sqlite:///{self.data_dir / 'baton.db'}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; a wrong value fails naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc, "BATON_")) from None


def describe_settings_error(exc: ValidationError, prefix: str) -> str:
    """The first problem of a settings class, naming its variable (``prefix`` + field)."""
    first = exc.errors()[0]
    if not first["loc"]:  # a rule across settings names its own; the input holds secrets
        return str(first["msg"]).removeprefix("Value error, ")
    key = prefix + "_".join(str(p) for p in first["loc"]).upper()
    if first["type"] == "extra_forbidden":
        return f"{key}: unknown setting"
    return f"{key}: {first['msg']} (got {first.get('input')!r})"
