"""Shippo as a provider plugin: the REST adapter, the `?token=` (and optional HMAC) webhook source, and
the emulator when no key is set."""

from __future__ import annotations

import secrets

from storebridge.providers.plugin import (
    BuiltProvider,
    ProviderContext,
    ProviderPlugin,
    Sandbox,
    StandaloneSandbox,
    WebhookRoute,
)
from storebridge.providers.shippo.adapter import ShippoProvider
from storebridge.providers.shippo.settings import ShippoSettings
from storebridge.providers.shippo.webhooks import (
    SCHEME,
    ShippoWebhookSource,
    identify_shippo_event,
    register_verifier,
    shippo_webhook_handler,
)
from storebridge.shipping.provider import ShippingSetup

__all__ = ["ShippoPlugin", "plugin", "SANDBOX_SHIPPO_KEY"]

SANDBOX_SHIPPO_KEY = "shippo_test_storebridge_sandbox"


class ShippoPlugin(ProviderPlugin[ShippoSettings]):
    name = "shippo"
    kind = "shipping"
    settings_model = ShippoSettings
    credential_variables = ("SHIPPO_API_KEY", "SHIPPO_WEBHOOK_TOKEN")
    switch_off = "SHIPPO_ENABLED=false"
    description = "Shippo rates, labels and tracking"

    def uses_sandbox(self, settings: ShippoSettings) -> bool:
        return settings.sandbox

    def build(self, settings: ShippoSettings, context: ProviderContext) -> BuiltProvider:
        token = settings.webhook_token.get_secret_value() if settings.webhook_token else secrets.token_urlsafe(24)
        hmac_secret = settings.webhook_hmac_secret.get_secret_value() if settings.webhook_hmac_secret else None
        webhook_url = context.webhook_url(self.name)  # + ?token=<SHIPPO_WEBHOOK_TOKEN>, never shown
        sandbox: Sandbox | None = None
        if settings.sandbox:
            from storebridge.sandbox.shippo import ShippoSandbox  # only the plugin knows its emulator

            sandbox = ShippoSandbox(
                webhook_url=f"{webhook_url}?token={token}", api_key=SANDBOX_SHIPPO_KEY, hmac_secret=hmac_secret
            )
            api_base: str | None = settings.api_base or context.sandbox_url(self.name)
            key = SANDBOX_SHIPPO_KEY
        else:
            assert settings.api_key is not None
            api_base, key = settings.api_base, settings.api_key.get_secret_value()
        provider = ShippoProvider(
            api_key=key, api_base=api_base, sandbox=settings.sandbox, timeout=context.http_timeout
        )
        register_verifier()
        source = ShippoWebhookSource(
            self.name,
            SCHEME,
            (token,),
            identify_shippo_event,
            settings.webhook_tolerance_seconds,
            hmac_secret=hmac_secret,
        )
        lease = provider.retry.timeout + 2 * context.http_timeout  # find (retried) + buy (once)
        return BuiltProvider(
            mode=provider.mode,
            shipping=ShippingSetup(provider, settings, lease_seconds=lease),
            webhooks=(WebhookRoute(source, shippo_webhook_handler()),),
            webhook_url=webhook_url,
            sandbox=sandbox,
            sandbox_url=api_base if sandbox is not None else None,
            problems=provider.validate_config(),
            closers=(provider.aclose,),
            health_check=provider.health_check,
        )

    def standalone_sandbox(self, base_url: str, webhook_url: str | None, secret: str) -> StandaloneSandbox:
        from storebridge.sandbox.shippo import ShippoSandbox

        return StandaloneSandbox(
            ShippoSandbox(webhook_url=webhook_url), (f"point the Shippo client's base URL at {base_url}",)
        )


plugin = ShippoPlugin()
