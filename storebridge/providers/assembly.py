"""Building the enabled plugins of a registry: what the composition root puts to work.

For each plugin: read its settings, list it in the integrations, skip it when switched off, refuse
its sandbox in production (collecting what is missing, so one start-up error names every provider),
then build it and file what it built by kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_settings import BaseSettings

from storebridge.errors import ConfigError
from storebridge.inventory.provider import InventorySetup
from storebridge.notifications.provider import MailProvider
from storebridge.observability.http import recording_calls
from storebridge.payments.provider import PaymentProvider
from storebridge.providers.plugin import (
    BuiltProvider,
    Closer,
    HealthCheck,
    Integration,
    ProviderContext,
    ProviderPlugin,
    ProviderServices,
    Sandbox,
)
from storebridge.providers.registry import ProviderRegistry
from storebridge.shipping.provider import ShippingSetup
from storebridge.webhooks.processor import WebhookHandler
from storebridge.webhooks.sources import WebhookSource
from storebridge.worker import Job

__all__ = [
    "BuiltProviders",
    "MissingCredentials",
    "build_providers",
    "refuse_sandboxes_in_production",
    "DISPLAY_KINDS",
]

# /integrations has always called the mail kind "email".
DISPLAY_KINDS = {"mail": "email"}


@dataclass(frozen=True, slots=True)
class MissingCredentials:
    """An enabled provider without credentials where it may not fall back to its sandbox (production)."""

    provider: str
    variables: tuple[str, ...]  # what a real configuration of it sets
    switch_off: str  # how to run without it instead, e.g. "STRIPE_ENABLED=false"

    def __str__(self) -> str:
        names = ", ".join(self.variables[:-1]) + " and " + self.variables[-1] if len(self.variables) > 1 else ""
        return f"{self.provider} (set {names or self.variables[0]}, or {self.switch_off})"


@dataclass
class BuiltProviders:
    """Everything the enabled plugins built, filed by what the hub does with it."""

    integrations: dict[str, Integration] = field(default_factory=dict)
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    payment_providers: dict[str, PaymentProvider] = field(default_factory=dict)
    webhook_sources: dict[str, WebhookSource] = field(default_factory=dict)
    webhook_handlers: dict[str, WebhookHandler] = field(default_factory=dict)
    shipping: tuple[str, ShippingSetup] | None = None
    mail: tuple[str, MailProvider, dict[str, str]] | None = None
    inventory: tuple[str, InventorySetup] | None = None
    job_factories: list[Callable[[ProviderServices], Sequence[Job]]] = field(default_factory=list)
    closers: list[Closer] = field(default_factory=list)
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    missing: list[MissingCredentials] = field(default_factory=list)

    def jobs(self, services: ProviderServices) -> list[Job]:
        return [job for factory in self.job_factories for job in factory(services)]

    def add(self, plugin: ProviderPlugin[Any], built: BuiltProvider) -> None:
        name = plugin.name
        kind_field = {
            "payments": built.payment,
            "shipping": built.shipping,
            "mail": built.mail,
            "inventory": built.inventory,
        }
        if kind_field[plugin.kind] is None:
            raise ConfigError(f"provider plugin {name!r} of kind {plugin.kind!r} built no {plugin.kind} adapter")
        if built.payment is not None:
            self.payment_providers[name] = built.payment  # the Hub closes and health-checks these itself
        if built.shipping is not None:
            self._only_one("shipping", self.shipping, name)
            self.shipping = (name, built.shipping)
        if built.mail is not None:
            self._only_one("mail", self.mail, name)
            self.mail = (name, built.mail, dict(built.mail_templates))
        if built.inventory is not None:
            self._only_one("inventory", self.inventory, name)
            self.inventory = (name, built.inventory)
        for route in built.webhooks:
            self.webhook_sources[route.source.name] = route.source
            self.webhook_handlers[route.source.name] = route.handler
        if built.sandbox is not None:
            self.sandboxes[name] = built.sandbox
        if built.jobs is not None:
            self.job_factories.append(built.jobs)
        self.closers.extend(built.closers)
        if built.health_check is not None:
            self.health_checks[name] = built.health_check

    @staticmethod
    def _only_one(kind: str, current: tuple[Any, ...] | None, name: str) -> None:
        if current is not None:
            raise ConfigError(
                f"two {kind} providers are enabled ({current[0]} and {name}): switch one off, the hub uses one"
            )


def build_providers(
    registry: ProviderRegistry | Sequence[ProviderPlugin[Any]],
    context: ProviderContext,
    *,
    chosen: Mapping[str, str] | None = None,
    settings_for: Mapping[str, BaseSettings] | None = None,
) -> BuiltProviders:
    """Build every enabled plugin; in production a plugin that would use its sandbox is listed as
    missing credentials instead (the caller refuses to start, naming all of them).

    `chosen` maps a kind served by one provider picked in settings (mail: NOTIFICATIONS_PROVIDER) to
    that provider's name: the kind's other plugins are left out. `settings_for` gives a plugin's
    settings instead of reading them from the environment (tests, library users)."""
    out = BuiltProviders()
    for plugin in registry:
        if chosen is not None and plugin.kind in chosen and chosen[plugin.kind] != plugin.name:
            continue
        settings = _settings(plugin, settings_for or {})
        enabled = plugin.enabled(settings)
        integration = Integration(plugin.name, DISPLAY_KINDS.get(plugin.kind, plugin.kind), enabled, "disabled")
        out.integrations[plugin.name] = integration
        if not enabled:
            continue
        if context.production and plugin.uses_sandbox(settings):
            out.missing.append(
                MissingCredentials(plugin.name, plugin.credential_variables, plugin.production_switch_off)
            )
            continue
        # Adapters built on ExternalIntegration record their calls into this hub's log.
        with recording_calls(context.calls):
            built = plugin.build(settings, context)
        integration.mode = built.mode
        integration.webhook_url = built.webhook_url
        integration.sandbox_url = built.sandbox_url
        integration.problems = list(built.problems)
        out.add(plugin, built)
    return out


def _settings(plugin: ProviderPlugin[Any], given: Mapping[str, BaseSettings]) -> Any:
    settings = given.get(plugin.name)
    if settings is None:
        return plugin.read_settings()
    if not isinstance(settings, plugin.settings_model):
        raise ConfigError(
            f"settings given for the {plugin.name} provider are a {type(settings).__name__}, "
            f"not its {plugin.settings_model.__name__}"
        )
    return settings


def refuse_sandboxes_in_production(production: bool, built: BuiltProviders) -> None:
    """In production, a provider without credentials is a start-up error naming what to set, never a
    quiet fall back to an emulator."""
    if not production:
        return
    if built.missing:
        raise ConfigError(
            "STOREBRIDGE_ENV=production and enabled providers have no credentials: "
            + "; ".join(str(m) for m in built.missing)
            + ". Production never falls back to the built-in sandboxes: set the variables, turn the provider "
            "off, or run with STOREBRIDGE_ENV=development to use the sandboxes"
        )
    if built.sandboxes:  # a plugin that built an emulator although it said it would not
        raise ConfigError(
            f"STOREBRIDGE_ENV=production but sandboxes were configured for {', '.join(sorted(built.sandboxes))}: "
            "set their credentials, or run with STOREBRIDGE_ENV=development"
        )
