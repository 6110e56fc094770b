"""The AcmePay plugin object: what storebridge finds in the `storebridge.providers` entry-point group.

It declares AcmePay's settings model and, for an enabled AcmePay, builds the adapter, the webhook
route (its source with AcmePay's signature check, and storebridge's payment webhook handler) and,
without an API key, the sandbox emulator the hub mounts at /_sandbox/acmepay.
"""

from __future__ import annotations

import secrets

from storebridge.payments.service import payment_webhook_handler
from storebridge.providers.plugin import (
    BuiltProvider,
    ProviderContext,
    ProviderPlugin,
    StandaloneSandbox,
    WebhookRoute,
)
from storebridge_acmepay.adapter import NAME, SANDBOX_API_KEY, AcmePayProvider
from storebridge_acmepay.sandbox import AcmePaySandbox
from storebridge_acmepay.settings import WEBHOOK_SECRET_PREFIX, AcmePaySettings
from storebridge_acmepay.webhooks import acmepay_source

__all__ = ["AcmePayPlugin", "plugin"]


class AcmePayPlugin(ProviderPlugin[AcmePaySettings]):
    name = NAME
    kind = "payments"
    settings_model = AcmePaySettings
    credential_variables = ("ACMEPAY_API_KEY", "ACMEPAY_WEBHOOK_SECRET")
    switch_off = "ACMEPAY_ENABLED=false"
    description = "AcmePay card payments (an example third-party provider)"

    def uses_sandbox(self, settings: AcmePaySettings) -> bool:
        return settings.sandbox

    def build(self, settings: AcmePaySettings, context: ProviderContext) -> BuiltProvider:
        webhook_url = context.webhook_url(NAME)
        secret = _signing_secret(settings.webhook_secret.get_secret_value() if settings.webhook_secret else "")
        sandbox: AcmePaySandbox | None = None
        if settings.api_key is None:
            sandbox = AcmePaySandbox(webhook_url=webhook_url, webhook_secret=secret, api_key=SANDBOX_API_KEY)
            api_key, base_url = SANDBOX_API_KEY, settings.api_base or context.sandbox_url(NAME)
        else:
            api_key, base_url = settings.api_key.get_secret_value(), settings.base_url
        adapter = AcmePayProvider(
            api_key=api_key,
            base_url=base_url,
            sandbox=sandbox is not None,
            timeout=context.http_timeout,
            calls=context.calls,
        )
        source = acmepay_source(NAME, (secret,), settings.webhook_tolerance_seconds)
        return BuiltProvider(
            mode=adapter.mode,
            payment=adapter,
            webhooks=(WebhookRoute(source, payment_webhook_handler(adapter)),),
            webhook_url=webhook_url,
            sandbox=sandbox,
            sandbox_url=base_url if sandbox is not None else None,
            problems=adapter.validate_config(),
            # No closers or health_check: a payment adapter's own aclose and health_check are what the hub calls.
        )

    def standalone_sandbox(self, base_url: str, webhook_url: str | None, secret: str) -> StandaloneSandbox:
        """`storebridge sandbox acmepay`: the emulator on its own port, and the settings that point a hub at it."""
        secret = _signing_secret(secret)
        sandbox = AcmePaySandbox(webhook_url=webhook_url, webhook_secret=secret, api_key=SANDBOX_API_KEY)
        notes = (
            "ACMEPAY_ENABLED=true",
            f"ACMEPAY_API_BASE={base_url}",
            f"ACMEPAY_API_KEY={SANDBOX_API_KEY}",
            f"ACMEPAY_WEBHOOK_SECRET={secret}",
        )
        return StandaloneSandbox(sandbox, notes)


def _signing_secret(configured: str) -> str:
    """The sandbox signs with the configured secret, or one made up for this run."""
    return configured or WEBHOOK_SECRET_PREFIX + secrets.token_hex(24)


plugin = AcmePayPlugin()
