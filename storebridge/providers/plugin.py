"""The provider plugin interface: what a payment, shipping, mail or inventory provider declares.

A provider is one package holding its adapter, settings, webhook verification and sandbox wiring,
and exposing one `ProviderPlugin` object in the `storebridge.providers` entry-point group. The
composition root (`storebridge.bootstrap`) loads every registered plugin, reads its settings, and
for each enabled one calls `build` with a narrow `ProviderContext`; what `build` returns
(`BuiltProvider`) is put to work: the adapter serves its capability, each `WebhookRoute` answers
`POST /webhooks/<source name>`, the sandbox is mounted under `/_sandbox/<name>/`, the jobs run in
the worker, the closers run at shutdown and the health check answers `storebridge check`.

In production (`STOREBRIDGE_ENV=production`) a plugin whose `uses_sandbox` is true is not built:
start-up stops with a ConfigError naming its `credential_variables` and its `switch_off`.

A minimal payment provider, in its own package::

    # acmepay/plugin.py
    from pydantic import Field, SecretStr

    from storebridge.payments.service import payment_webhook_handler
    from storebridge.providers.plugin import (
        BuiltProvider, ProviderContext, ProviderPlugin, ProviderSettings, WebhookRoute,
    )
    from storebridge.webhooks.sources import WebhookSource

    class AcmePaySettings(ProviderSettings):
        enabled: bool = Field(True, validation_alias="ACMEPAY_ENABLED")
        api_key: SecretStr | None = Field(None, validation_alias="ACMEPAY_API_KEY")

    class AcmePayPlugin(ProviderPlugin[AcmePaySettings]):
        name = "acmepay"
        kind = "payments"
        settings_model = AcmePaySettings
        credential_variables = ("ACMEPAY_API_KEY",)
        switch_off = "ACMEPAY_ENABLED=false"

        def uses_sandbox(self, settings: AcmePaySettings) -> bool:
            return settings.api_key is None

        def build(self, settings: AcmePaySettings, context: ProviderContext) -> BuiltProvider:
            adapter = AcmePayProvider(...)  # implements storebridge.payments.provider.PaymentProvider
            # `scheme` names a verifier in storebridge.webhooks.verify (or subclass WebhookSource and
            # override `verify` for a scheme of your own); `identify` reads the event id and type.
            source = WebhookSource("acmepay", "standard", (secret,), identify_acmepay_event)
            return BuiltProvider(
                mode=adapter.mode,
                payment=adapter,
                webhooks=(WebhookRoute(source, payment_webhook_handler(adapter)),),
                closers=(adapter.aclose,),
                health_check=adapter.health_check,
            )

    plugin = AcmePayPlugin()

    # pyproject.toml
    [project.entry-points."storebridge.providers"]
    acmepay = "acmepay.plugin:plugin"

By kind, `build` sets one adapter field of BuiltProvider: `payment` (a PaymentProvider), `shipping`
(a ShippingSetup: ShippingProvider plus label defaults), `mail` (a MailProvider, with optional
`mail_templates`) or `inventory` (an InventorySetup). `standalone_sandbox` serves the emulator alone
for `storebridge sandbox <name>`.

The names here are stable: new fields may be added (with defaults), none renamed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from pydantic_settings import BaseSettings, SettingsConfigDict

from storebridge.config import read_settings
from storebridge.integration import HealthStatus

if TYPE_CHECKING:  # annotations only: loading a plugin (`storebridge sandbox NAME`) stays light
    from starlette.types import ASGIApp

    from storebridge.db import Database
    from storebridge.inventory.provider import InventorySetup
    from storebridge.notifications.provider import MailProvider
    from storebridge.observability.calls import CallLog
    from storebridge.payments.provider import PaymentProvider
    from storebridge.payments.service import PaymentService
    from storebridge.shipping.provider import ShippingSetup
    from storebridge.webhooks.processor import WebhookHandler
    from storebridge.webhooks.sources import WebhookSource
    from storebridge.worker import Job

__all__ = [
    "BuiltProvider",
    "Closer",
    "HealthCheck",
    "Integration",
    "Kind",
    "KINDS",
    "ProviderContext",
    "ProviderPlugin",
    "ProviderServices",
    "ProviderSettings",
    "Sandbox",
    "StandaloneSandbox",
    "WebhookRoute",
]

Kind = Literal["payments", "shipping", "mail", "inventory"]
KINDS: tuple[Kind, ...] = ("payments", "shipping", "mail", "inventory")

Closer = Callable[[], Awaitable[None]]
HealthCheck = Callable[[], Awaitable[HealthStatus]]


class Sandbox(Protocol):
    """A provider's emulator, mounted under /_sandbox/<name>/ in development."""

    @property
    def app(self) -> ASGIApp: ...

    async def aclose(self) -> None: ...


class ProviderSettings(BaseSettings):
    """Base for a provider's settings: read from the environment by each field's validation_alias,
    case-sensitive, unknown variables ignored. A bad value is a ConfigError naming the variable."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=True)


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What a plugin's `build` may use: never the Hub."""

    public_url: str  # the hub's public base URL, no trailing slash
    production: bool  # STOREBRIDGE_ENV=production
    http_timeout: float  # STOREBRIDGE_HTTP_TIMEOUT, seconds per provider call
    calls: CallLog  # this hub's log of outbound provider calls
    retry_base: float = 2.0  # STOREBRIDGE_RETRY_BASE_SECONDS
    retry_cap: float = 3600.0  # STOREBRIDGE_RETRY_MAX_SECONDS

    def webhook_url(self, source: str) -> str:
        return f"{self.public_url}/webhooks/{source}"

    def sandbox_url(self, name: str) -> str:
        return f"{self.public_url}/_sandbox/{name}"


@dataclass(frozen=True, slots=True)
class ProviderServices:
    """The capability services a provider's worker jobs may call; built after every adapter."""

    db: Database
    payments: PaymentService


@dataclass(frozen=True, slots=True)
class WebhookRoute:
    """POST /webhooks/<source.name>: how the source is verified and identified, and how the worker
    processes what it stored."""

    source: WebhookSource
    handler: WebhookHandler


@dataclass
class Integration:
    """What GET /integrations and `storebridge check` report for one provider."""

    name: str
    kind: str
    enabled: bool
    mode: str  # sandbox | test | live | disabled | custom
    webhook_url: str | None = None
    sandbox_url: str | None = None
    problems: list[str] = field(default_factory=list)
    last_health: HealthStatus | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "enabled": self.enabled,
            "mode": self.mode,
            "webhook_url": self.webhook_url,
            "sandbox_url": self.sandbox_url,
            "problems": self.problems,
            "last_health": self.last_health.to_dict() if self.last_health else None,
        }


@dataclass
class BuiltProvider:
    """What an enabled plugin built. Exactly the field of its kind is set: `payment` (payments),
    `shipping` (shipping), `mail` (mail) or `inventory` (inventory)."""

    mode: str  # sandbox | test | live
    payment: PaymentProvider | None = None
    shipping: ShippingSetup | None = None
    mail: MailProvider | None = None
    mail_templates: Mapping[str, str] = field(default_factory=dict)  # notification kind -> provider template id
    inventory: InventorySetup | None = None
    webhooks: Sequence[WebhookRoute] = ()
    webhook_url: str | None = None  # shown by /integrations (without secrets)
    sandbox: Sandbox | None = None
    sandbox_url: str | None = None
    problems: list[str] = field(default_factory=list)
    jobs: Callable[[ProviderServices], Sequence[Job]] | None = None
    closers: Sequence[Closer] = ()
    health_check: HealthCheck | None = None


@dataclass(frozen=True, slots=True)
class StandaloneSandbox:
    """`storebridge sandbox <name>`: the emulator alone on its own port, and the settings (one line each)
    that point a storebridge at it."""

    sandbox: Sandbox
    notes: Sequence[str] = ()


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class ProviderPlugin(ABC, Generic[SettingsT]):
    """One provider: its name, kind and settings, how to build its adapter, and what production needs.

    `name` is its integration name and (unless `webhook_sources` says otherwise) its webhook path."""

    name: str
    kind: Kind
    settings_model: type[SettingsT]
    credential_variables: tuple[str, ...]  # what a real configuration sets (named when production refuses it)
    switch_off: str = ""  # how to run without it, e.g. "STRIPE_ENABLED=false"; default <NAME>_ENABLED=false
    webhook_sources: tuple[str, ...] | None = None  # source names it mounts; default (name,)
    description: str = ""  # one line for the CLI's help
    priority: int = 100  # listing order within its kind (lower first): /integrations, the CLI

    def read_settings(self) -> SettingsT:
        """Read the settings from the environment; ConfigError names each bad variable, never its value."""
        return read_settings(self.settings_model, what=f"{self.name} settings")

    def enabled(self, settings: SettingsT) -> bool:
        """Listed but not built when false (default: the settings' `enabled` field, else true)."""
        return bool(getattr(settings, "enabled", True))

    @abstractmethod
    def uses_sandbox(self, settings: SettingsT) -> bool:
        """True when no credentials are set and calls would go to the built-in emulator."""

    @abstractmethod
    def build(self, settings: SettingsT, context: ProviderContext) -> BuiltProvider:
        """Build the adapter (pointing at its sandbox when `uses_sandbox`), its webhooks and jobs."""

    def standalone_sandbox(self, base_url: str, webhook_url: str | None, secret: str) -> StandaloneSandbox | None:
        """The emulator alone, serving at `base_url` and delivering signed webhooks to `webhook_url`
        (`secret`: its signing secret or credential, empty for a generated one). None: it has no emulator."""
        return None

    @property
    def reserved_names(self) -> tuple[str, ...]:
        """The names under /webhooks/ and /_sandbox/ this provider takes."""
        return (self.name, *(self.webhook_sources or ()))

    @property
    def production_switch_off(self) -> str:
        return self.switch_off or f"{self.name.upper()}_ENABLED=false"
