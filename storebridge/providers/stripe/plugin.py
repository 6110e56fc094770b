"""Stripe as a provider plugin: the SDK adapter, the Stripe-Signature webhook source, and the emulator
when no key is set."""

from __future__ import annotations

import secrets

from storebridge.payments.service import payment_webhook_handler
from storebridge.providers.plugin import (
    BuiltProvider,
    ProviderContext,
    ProviderPlugin,
    Sandbox,
    StandaloneSandbox,
    WebhookRoute,
)
from storebridge.providers.stripe.adapter import StripeProvider, identify_stripe_event
from storebridge.providers.stripe.settings import StripeSettings
from storebridge.webhooks.sources import WebhookSource

__all__ = ["StripePlugin", "plugin", "SANDBOX_STRIPE_KEY"]

SANDBOX_STRIPE_KEY = "sk_test_storebridge_sandbox"


class StripePlugin(ProviderPlugin[StripeSettings]):
    name = "stripe"
    kind = "payments"
    settings_model = StripeSettings
    credential_variables = ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")
    switch_off = "STRIPE_ENABLED=false"
    description = "Stripe payments (PaymentIntents)"
    priority = 10

    def uses_sandbox(self, settings: StripeSettings) -> bool:
        return settings.sandbox

    def build(self, settings: StripeSettings, context: ProviderContext) -> BuiltProvider:
        secret = settings.webhook_secret
        webhook_secret = secret.get_secret_value() if secret else "whsec_" + secrets.token_hex(24)
        webhook_url = context.webhook_url(self.name)
        sandbox: Sandbox | None = None
        if settings.sandbox:
            from storebridge.sandbox.stripe import StripeSandbox  # only the plugin knows its emulator

            sandbox = StripeSandbox(webhook_url=webhook_url, webhook_secret=webhook_secret)
            api_base: str | None = settings.api_base or context.sandbox_url(self.name)
            key = SANDBOX_STRIPE_KEY
        else:
            assert settings.secret_key is not None
            api_base, key = settings.api_base, settings.secret_key.get_secret_value()
        provider = StripeProvider(
            secret_key=key,
            api_base=api_base,
            sandbox=settings.sandbox,
            max_network_retries=settings.max_network_retries,
            timeout=context.http_timeout,
            calls=context.calls,
        )
        source = WebhookSource(
            self.name, "stripe", (webhook_secret,), identify_stripe_event, settings.webhook_tolerance_seconds
        )
        return BuiltProvider(
            mode=provider.mode,
            payment=provider,
            webhooks=(WebhookRoute(source, payment_webhook_handler(provider)),),
            webhook_url=webhook_url,
            sandbox=sandbox,
            sandbox_url=api_base if sandbox is not None else None,
            problems=provider.validate_config(),
        )

    def standalone_sandbox(self, base_url: str, webhook_url: str | None, secret: str) -> StandaloneSandbox:
        from storebridge.sandbox.stripe import StripeSandbox

        secret = secret or "whsec_" + secrets.token_hex(24)
        notes = (
            f"STRIPE_API_BASE={base_url}",
            f"STRIPE_WEBHOOK_SECRET={secret}",
            "STRIPE_SECRET_KEY=sk_test_<anything>",
        )
        return StandaloneSandbox(StripeSandbox(webhook_url=webhook_url, webhook_secret=secret), notes)


plugin = StripePlugin()
