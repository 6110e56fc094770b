"""PayPal as a provider plugin: Orders v2 over httpx, the offline (or API) webhook verifier, the
emulator when no credentials are set, and the auto-capture job (see auto_capture.py)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from storebridge.payments.service import PaymentService, payment_webhook_handler
from storebridge.providers.paypal.adapter import PayPalProvider, identify_paypal_event
from storebridge.providers.paypal.auto_capture import AutoCapture
from storebridge.providers.paypal.client import PayPalClient
from storebridge.providers.paypal.settings import PayPalSettings
from storebridge.providers.paypal.verify import PayPalVerifier, paypal_source
from storebridge.providers.plugin import (
    BuiltProvider,
    ProviderContext,
    ProviderPlugin,
    ProviderServices,
    Sandbox,
    StandaloneSandbox,
    WebhookRoute,
)
from storebridge.worker import Job

__all__ = ["PayPalPlugin", "plugin", "SANDBOX_CLIENT_ID", "SANDBOX_CLIENT_SECRET"]

SANDBOX_CLIENT_ID = "storebridge-sandbox-client"
SANDBOX_CLIENT_SECRET = "storebridge-sandbox-secret"


def _auto_capture(services: ProviderServices) -> Sequence[Job]:
    # Its own PaymentService over the same providers: the job confirms through the ordinary command.
    auto = AutoCapture(PaymentService(services.db, services.payments.providers))
    return [("paypal-auto-capture", auto.run_once)]


class PayPalPlugin(ProviderPlugin[PayPalSettings]):
    name = "paypal"
    kind = "payments"
    settings_model = PayPalSettings
    credential_variables = ("PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET", "PAYPAL_WEBHOOK_ID")
    switch_off = "PAYPAL_ENABLED=false"
    description = "PayPal Checkout (Orders v2)"
    priority = 20

    def uses_sandbox(self, settings: PayPalSettings) -> bool:
        return settings.sandbox

    def build(self, settings: PayPalSettings, context: ProviderContext) -> BuiltProvider:
        webhook_url = context.webhook_url(self.name)
        sandbox: Sandbox | None = None
        sandbox_prefixes: tuple[str, ...] = ()
        if settings.sandbox:
            from storebridge.sandbox.paypal import PayPalSandbox  # only the plugin knows its emulator

            webhook_id = settings.webhook_id or "WHSANDBOX" + secrets.token_hex(8).upper()
            mounted = context.sandbox_url(self.name)
            base_url = settings.api_base or mounted
            sandbox = PayPalSandbox(
                base_url=mounted,
                webhook_url=webhook_url,
                webhook_id=webhook_id,
                client_id=SANDBOX_CLIENT_ID,
                client_secret=SANDBOX_CLIENT_SECRET,
            )
            sandbox_prefixes = (f"{base_url.rstrip('/')}/certs/",)
            client_id, secret, mode = SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, "sandbox"
        else:
            assert settings.client_id and settings.client_secret is not None and settings.webhook_id
            webhook_id, base_url = settings.webhook_id, settings.base_url
            client_id, secret = settings.client_id, settings.client_secret.get_secret_value()
            mode = "test" if settings.environment == "sandbox" else "live"
        client = PayPalClient(
            client_id=client_id, client_secret=secret, base_url=base_url, mode=mode, timeout=context.http_timeout
        )
        provider = PayPalProvider(client, sandbox=settings.sandbox)
        verifier = PayPalVerifier(
            webhook_id=webhook_id,
            tolerance=settings.webhook_tolerance_seconds,
            mode=settings.verify_mode,
            sandbox_cert_prefixes=sandbox_prefixes,
            api_verify=provider.verify_webhook_signature,
        )
        return BuiltProvider(
            mode=provider.mode,
            payment=provider,
            webhooks=(WebhookRoute(paypal_source(verifier, identify_paypal_event), payment_webhook_handler(provider)),),
            webhook_url=webhook_url,
            sandbox=sandbox,
            sandbox_url=base_url if sandbox is not None else None,
            problems=provider.validate_config(),
            jobs=_auto_capture,
            closers=(verifier.aclose,),
        )

    def standalone_sandbox(self, base_url: str, webhook_url: str | None, secret: str) -> StandaloneSandbox:
        from storebridge.sandbox.paypal import PayPalSandbox

        client_secret = secret or secrets.token_hex(16)
        sandbox = PayPalSandbox(
            base_url=base_url,
            webhook_url=webhook_url,
            webhook_id="WH-SANDBOX",
            client_id="sandbox-client",
            client_secret=client_secret,
        )
        notes = (
            f"PAYPAL_API_BASE={base_url}",
            "PAYPAL_CLIENT_ID=sandbox-client",
            f"PAYPAL_CLIENT_SECRET={client_secret}",
            "PAYPAL_WEBHOOK_ID=WH-SANDBOX",
        )
        return StandaloneSandbox(sandbox, notes)


plugin = PayPalPlugin()
