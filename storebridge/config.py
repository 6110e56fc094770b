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
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, case_sensitive=True, use_attribute_docstrings=True
    )


class Settings(_Base):
    env: Literal["development", "production"] = Field("development", validation_alias="STOREBRIDGE_ENV")
    """`development`: a provider without credentials talks to its sandbox (with a log warning). `production`: every
    enabled provider needs its real credentials (no sandbox fallback; start-up names what is missing), `serve` needs
    STOREBRIDGE_API_TOKEN, and nothing is served under /_sandbox."""
    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias="STOREBRIDGE_DATABASE_URL")
    """`sqlite:///path` or `postgresql://user@host/db` (`postgres://` and the async-driver forms are accepted too)."""
    redis_url: SecretStr | None = Field(None, validation_alias="STOREBRIDGE_REDIS_URL")
    """Redis for event fan-out (scale-out): the outbox is published to a Redis Stream and each subscriber reads through
    its own consumer group. Unset: events are dispatched from the database outbox."""
    redis_stream: str = Field("storebridge:events", min_length=1, validation_alias="STOREBRIDGE_REDIS_STREAM")
    """The Redis Stream events are published to (when STOREBRIDGE_REDIS_URL is set); a key name without spaces."""
    redis_claim_idle_seconds: float = Field(60.0, gt=0, validation_alias="STOREBRIDGE_REDIS_CLAIM_IDLE_SECONDS")
    """Stream entries a consumer left pending this long are taken over by another one (XAUTOCLAIM): the 30 s handler
    timeout plus a margin."""
    redis_stream_maxlen: int = Field(1_000_000, ge=1000, validation_alias="STOREBRIDGE_REDIS_STREAM_MAXLEN")
    """Length the Redis Stream is trimmed to as events are published."""
    redis_repair_interval_seconds: float = Field(
        30.0, gt=0, validation_alias="STOREBRIDGE_REDIS_REPAIR_INTERVAL_SECONDS"
    )
    """How often the repair job re-publishes from the outbox what a Redis restart lost."""
    redis_repair_window_seconds: float = Field(
        7 * 86400.0, gt=0, validation_alias="STOREBRIDGE_REDIS_REPAIR_WINDOW_SECONDS"
    )
    """Events dispatched this recently (default 7 days) are re-published if Redis lost them before delivery."""
    api_token: SecretStr | None = Field(None, validation_alias="STOREBRIDGE_API_TOKEN")
    """Bearer token for the API, /metrics, the sandboxes' controls and the console's sign-in; it always wins. Unset:
    the first `serve` generates one, prints it once and keeps it beside the SQLite database as `<database>.token`
    (on PostgreSQL `./storebridge.token`)."""
    public_url: str | None = Field(None, validation_alias="STOREBRIDGE_PUBLIC_URL")
    """The URL providers (and the sandboxes) reach this hub at: the base of every webhook URL. Unset:
    `http://<host>:<port>` of `serve`; an https URL also marks the console's cookie Secure."""
    log_level: str = Field("INFO", validation_alias="STOREBRIDGE_LOG_LEVEL")
    """DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    log_format: str = Field("json", validation_alias="STOREBRIDGE_LOG_FORMAT")
    """`json` (structured logs, structlog) or `console` for humans."""
    webhook_providers: str = Field("", validation_alias="STOREBRIDGE_WEBHOOK_PROVIDERS")
    """Webhook providers by settings alone, `name:scheme` comma-separated (e.g. `acme:standard,legacy:plain`); each
    reads its secret(s) from `<NAME>_WEBHOOK_SECRET`, comma-separated during a rotation."""
    plugins: str = Field("", validation_alias="STOREBRIDGE_PLUGINS")
    """Subscribers `serve` and `worker` load: comma-separated `module:function` entries, each called once with the Hub
    before it starts; a bad entry stops the command (exit 2)."""
    custom_webhooks: tuple[CustomProvider, ...] = ()
    """The custom webhook providers: parsed by load_settings from STOREBRIDGE_WEBHOOK_PROVIDERS and each one's
    `<NAME>_WEBHOOK_SECRET` (no variable of its own)."""
    webhook_retention_days: float = Field(30.0, gt=0, validation_alias="STOREBRIDGE_WEBHOOK_RETENTION_DAYS")
    """Processed inbox rows older than this many days are pruned (dead ones never)."""
    reconcile_interval_seconds: float = Field(60.0, gt=0, validation_alias="STOREBRIDGE_RECONCILE_INTERVAL")
    """Seconds between two runs of the reconciler (re-reads pending payments, catches up on missed Stripe events)."""
    reconcile_pending_after_seconds: float = Field(600.0, gt=0, validation_alias="STOREBRIDGE_RECONCILE_PENDING_AFTER")
    """Seconds after which a pending payment is re-read from its provider by the reconciler."""
    webhook_max_body_bytes: int = Field(1024 * 1024, gt=0, validation_alias="STOREBRIDGE_WEBHOOK_MAX_BODY_BYTES")
    """Largest webhook body stored; a larger one is answered 413."""
    webhook_max_attempts: int = Field(8, ge=1, validation_alias="STOREBRIDGE_WEBHOOK_MAX_ATTEMPTS")
    """Processing attempts before a webhook is `dead` (replay it after fixing the cause)."""
    retry_base_seconds: float = Field(2.0, gt=0, validation_alias="STOREBRIDGE_RETRY_BASE_SECONDS")
    """First backoff delay for stored work (webhooks, subscriber deliveries, e-mails); it grows up to
    STOREBRIDGE_RETRY_MAX_SECONDS."""
    retry_max_seconds: float = Field(3600.0, gt=0, validation_alias="STOREBRIDGE_RETRY_MAX_SECONDS")
    """Longest backoff delay for stored work."""
    worker_poll_seconds: float = Field(0.2, gt=0, validation_alias="STOREBRIDGE_WORKER_POLL_SECONDS")
    """How long an idle worker waits before it looks for work again."""
    worker_process: bool = Field(True, validation_alias="STOREBRIDGE_WORKER_PROCESS")
    """`serve` runs its worker in a child process of its own, so processing a backlog never slows the loop that
    answers webhooks (false: in the serving process's event loop, as a library embedding does)."""
    delivery_process: bool = Field(True, validation_alias="STOREBRIDGE_DELIVERY_PROCESS")
    """With the worker in a child process, outbound webhook deliveries run in a second child of their own, so their
    HTTP sends use the other core while the first processes the inbox and the outbox (false: both in one child)."""
    inbox_journal: bool = Field(True, validation_alias="STOREBRIDGE_INBOX_JOURNAL")
    """SQLite: during a sustained webhook burst, acknowledge each webhook once it is synced to the inbox journal
    beside the database and move it into the inbox table after the burst (false: every webhook is in the table
    when its 2xx leaves, and a burst is acknowledged at the table's speed, about two thirds as fast)."""
    worker_burst_share: float = Field(0.2, gt=0, le=1, validation_alias="STOREBRIDGE_WORKER_BURST_SHARE")
    """Share of the time the worker takes while webhooks arrive in a burst at the serving process (acknowledging comes
    first; the inbox absorbs the burst and the worker drains it after)."""
    worker_lease_seconds: float = Field(300.0, gt=0, validation_alias="STOREBRIDGE_WORKER_LEASE_SECONDS")
    """How long a worker's claim on inbox rows and outbox events lasts; after it another worker may take them over."""
    worker_batch_size: int = Field(100, gt=0, validation_alias="STOREBRIDGE_WORKER_BATCH_SIZE")
    """Rows a worker claims at once."""
    http_timeout_seconds: float = Field(30.0, gt=0, validation_alias="STOREBRIDGE_HTTP_TIMEOUT")
    """Timeout of each call to a provider's API."""
    allow_private_webhook_targets: bool = Field(False, validation_alias="STOREBRIDGE_ALLOW_PRIVATE_WEBHOOK_TARGETS")
    """Allow outbound webhooks to loopback, private and link-local addresses (refused by default; metadata addresses
    stay refused)."""
    outbound_timeout_seconds: float = Field(15.0, gt=0, validation_alias="STOREBRIDGE_OUTBOUND_TIMEOUT")
    """Timeout of an outbound webhook request."""
    # The hub's HTTP server (storebridge.webhooks.http_limits): slow or idle clients are cut off.
    http_header_timeout_seconds: float = Field(20.0, gt=0, validation_alias="STOREBRIDGE_HTTP_HEADER_TIMEOUT")
    """A request head must be complete this long after the connection opens or the previous answer; else 408 and the
    connection is closed (an idle keep-alive connection is closed silently, and uvicorn's 5 s keep-alive timeout
    usually comes first)."""
    http_body_timeout_seconds: float = Field(20.0, gt=0, validation_alias="STOREBRIDGE_HTTP_BODY_TIMEOUT")
    """Longest gap between two reads of a request body; else 408 and closed (time the hub itself holds the body back
    does not count)."""
    http_max_header_bytes: int = Field(64 * 1024, ge=1024, validation_alias="STOREBRIDGE_HTTP_MAX_HEADER_BYTES")
    """Largest request head (request line and headers); a larger one is 431 and closed, never stored."""
    http_max_connections: int = Field(2048, ge=1, validation_alias="STOREBRIDGE_HTTP_MAX_CONNECTIONS")
    """Open connections served at once; one more is answered 503 and closed at once. Keep it under the process's
    open-file limit (`ulimit -n`) minus the database's and clients' files. uvicorn's `limit_concurrency` is not
    used: it also counts running requests, refuses only once a head has arrived, and the fast webhook path bypasses
    it."""
    trusted_proxies: str = Field("", validation_alias="STOREBRIDGE_TRUSTED_PROXIES")
    """Reverse proxies (IPs or networks, comma-separated; `*` for any peer) whose X-Forwarded-For and X-Forwarded-Proto
    are believed. Empty: nobody's, so the client address (logs, the console's sign-in throttle) is the TCP peer."""
    provider_settings: dict[str, BaseSettings] = Field(default_factory=dict, exclude=True)
    """Providers' settings given in code, by provider name, used instead of reading their variables (tests and library
    users); each provider's settings model lives with it."""

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
