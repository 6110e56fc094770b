"""Typed settings, read from the environment with the guide's variable names.

Every field names the environment variable it comes from. A malformed value stops
start-up with a message that names the variable and says what to do; secrets are
`SecretStr` so they never reach a log line or an error body.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storebridge.errors import ConfigError
from storebridge.webhooks.custom import CustomProvider, parse_custom_providers

__all__ = ["Settings", "load_settings", "read_settings", "DEFAULT_DATABASE_URL"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./storebridge.db"


def _env(name: str) -> Any:
    return Field(validation_alias=AliasChoices(name))


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=True)


class Settings(_Base):
    # production: every enabled provider needs real credentials (no sandbox fallback) and /_sandbox is not served.
    env: Literal["development", "production"] = Field("development", validation_alias="STOREBRIDGE_ENV")
    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias="STOREBRIDGE_DATABASE_URL")
    redis_url: SecretStr | None = Field(None, validation_alias="STOREBRIDGE_REDIS_URL")
    # Redis Streams fan-out (used when STOREBRIDGE_REDIS_URL is set).
    redis_stream: str = Field("storebridge:events", min_length=1, validation_alias="STOREBRIDGE_REDIS_STREAM")
    # Entries idle this long are taken over by another consumer: the 30 s handler timeout plus a margin.
    redis_claim_idle_seconds: float = Field(60.0, gt=0, validation_alias="STOREBRIDGE_REDIS_CLAIM_IDLE_SECONDS")
    redis_stream_maxlen: int = Field(1_000_000, ge=1000, validation_alias="STOREBRIDGE_REDIS_STREAM_MAXLEN")
    redis_repair_interval_seconds: float = Field(
        30.0, gt=0, validation_alias="STOREBRIDGE_REDIS_REPAIR_INTERVAL_SECONDS"
    )
    # Events dispatched (created) this recently are re-published if Redis lost them before delivery.
    redis_repair_window_seconds: float = Field(
        7 * 86400.0, gt=0, validation_alias="STOREBRIDGE_REDIS_REPAIR_WINDOW_SECONDS"
    )
    api_token: SecretStr | None = Field(None, validation_alias="STOREBRIDGE_API_TOKEN")
    public_url: str | None = Field(None, validation_alias="STOREBRIDGE_PUBLIC_URL")
    log_level: str = Field("INFO", validation_alias="STOREBRIDGE_LOG_LEVEL")
    log_format: str = Field("json", validation_alias="STOREBRIDGE_LOG_FORMAT")
    webhook_providers: str = Field("", validation_alias="STOREBRIDGE_WEBHOOK_PROVIDERS")
    # Subscribers `serve` and `worker` load: comma-separated `module:function`, each called with the Hub.
    plugins: str = Field("", validation_alias="STOREBRIDGE_PLUGINS")
    custom_webhooks: tuple[CustomProvider, ...] = ()
    webhook_retention_days: float = Field(30.0, gt=0, validation_alias="STOREBRIDGE_WEBHOOK_RETENTION_DAYS")
    reconcile_interval_seconds: float = Field(60.0, gt=0, validation_alias="STOREBRIDGE_RECONCILE_INTERVAL")
    reconcile_pending_after_seconds: float = Field(600.0, gt=0, validation_alias="STOREBRIDGE_RECONCILE_PENDING_AFTER")
    webhook_max_body_bytes: int = Field(1024 * 1024, gt=0, validation_alias="STOREBRIDGE_WEBHOOK_MAX_BODY_BYTES")
    webhook_max_attempts: int = Field(8, ge=1, validation_alias="STOREBRIDGE_WEBHOOK_MAX_ATTEMPTS")
    retry_base_seconds: float = Field(2.0, gt=0, validation_alias="STOREBRIDGE_RETRY_BASE_SECONDS")
    retry_max_seconds: float = Field(3600.0, gt=0, validation_alias="STOREBRIDGE_RETRY_MAX_SECONDS")
    worker_poll_seconds: float = Field(0.2, gt=0, validation_alias="STOREBRIDGE_WORKER_POLL_SECONDS")
    # In-process worker: the share of the event loop it may take while webhooks are arriving in a burst.
    worker_burst_share: float = Field(0.2, gt=0, le=1, validation_alias="STOREBRIDGE_WORKER_BURST_SHARE")
    worker_lease_seconds: float = Field(300.0, gt=0, validation_alias="STOREBRIDGE_WORKER_LEASE_SECONDS")
    worker_batch_size: int = Field(100, gt=0, validation_alias="STOREBRIDGE_WORKER_BATCH_SIZE")
    http_timeout_seconds: float = Field(30.0, gt=0, validation_alias="STOREBRIDGE_HTTP_TIMEOUT")
    allow_private_webhook_targets: bool = Field(False, validation_alias="STOREBRIDGE_ALLOW_PRIVATE_WEBHOOK_TARGETS")
    outbound_timeout_seconds: float = Field(15.0, gt=0, validation_alias="STOREBRIDGE_OUTBOUND_TIMEOUT")
    # The hub's HTTP server (storebridge.webhooks.http_limits): slow or idle clients are cut off.
    http_header_timeout_seconds: float = Field(20.0, gt=0, validation_alias="STOREBRIDGE_HTTP_HEADER_TIMEOUT")
    http_body_timeout_seconds: float = Field(20.0, gt=0, validation_alias="STOREBRIDGE_HTTP_BODY_TIMEOUT")
    http_max_header_bytes: int = Field(64 * 1024, ge=1024, validation_alias="STOREBRIDGE_HTTP_MAX_HEADER_BYTES")
    http_max_connections: int = Field(2048, ge=1, validation_alias="STOREBRIDGE_HTTP_MAX_CONNECTIONS")
    # Forwarded headers (X-Forwarded-For, X-Forwarded-Proto) are believed only from these peers.
    trusted_proxies: str = Field("", validation_alias="STOREBRIDGE_TRUSTED_PROXIES")
    # A provider's settings given here (by provider name) are used instead of reading its variables:
    # tests and library users configure a provider in code. Each provider's settings model lives with it.
    provider_settings: dict[str, BaseSettings] = Field(default_factory=dict, exclude=True)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        level = v.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("redis_stream")
    @classmethod
    def _redis_stream(cls, v: str) -> str:
        if v != v.strip() or any(c.isspace() for c in v):
            raise ValueError("must be a Redis key name without spaces")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, v: str) -> str:
        entries = [entry.strip() for entry in v.split(",") if entry.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network: list the reverse proxies' addresses, "
                    "comma-separated (e.g. 10.0.0.5,10.1.0.0/16), or '*' for any peer"
                ) from None
        return ",".join(entries)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return self.trusted_proxies.split(",") if self.trusted_proxies else []

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, v: str) -> str:
        if v not in {"json", "console"}:
            raise ValueError("must be 'json' or 'console'")
        return v

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        # Accept the URLs people copy from their hosting panel; use the async drivers.
        for plain, driver in (
            ("postgres://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("sqlite:///", "sqlite+aiosqlite:///"),
        ):
            if v.startswith(plain):
                return driver + v[len(plain) :]
        if not v.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return v

    @property
    def production(self) -> bool:
        """STOREBRIDGE_ENV=production: no provider may fall back to its sandbox, none is mounted."""
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _format_errors(exc: ValidationError, what: str = "settings") -> str:
    lines = []
    for err in exc.errors():
        # loc holds the environment variable name (the alias); never print the input: it may be a secret.
        name = ".".join(str(p) for p in err["loc"]) or what
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {msg}")
    return "; ".join(lines)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def read_settings(cls: type[SettingsT], *, what: str = "settings", **values: Any) -> SettingsT:
    """Build a settings class from the environment (or `values`); ConfigError names each bad variable,
    never its value. Capabilities use it for their own settings (SHIPPO_*, PAYPAL_*, ...)."""
    try:
        return cls(**values)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, what)) from None


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise ConfigError naming each bad variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    if settings.webhook_providers and not settings.custom_webhooks:
        custom = parse_custom_providers(settings.webhook_providers, os.environ)
        settings = settings.model_copy(update={"custom_webhooks": tuple(custom)})
    return settings
