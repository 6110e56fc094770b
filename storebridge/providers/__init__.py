"""Providers are plugins: the interface (`storebridge.providers.plugin`), the registry of installed ones
(`storebridge.providers.registry`) and the built-in providers, one folder each (stripe, paypal, shippo,
sendgrid, smtp, inventory_http). See storebridge.providers.plugin for a minimal provider."""

from storebridge.providers.plugin import (
    KINDS,
    BuiltProvider,
    Closer,
    HealthCheck,
    Integration,
    Kind,
    ProviderContext,
    ProviderPlugin,
    ProviderServices,
    ProviderSettings,
    Sandbox,
    StandaloneSandbox,
    WebhookRoute,
)

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
