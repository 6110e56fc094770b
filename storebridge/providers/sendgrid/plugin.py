"""SendGrid as a mail provider plugin: the v3 Mail Send adapter over httpx, the signed Event Webhook
(ECDSA) source, dynamic template ids, and the emulator when no key is set."""

from __future__ import annotations

from storebridge.errors import ConfigError
from storebridge.notifications.commands import ORDER_CONFIRMATION, REFUND_NOTICE, SHIPPING_NOTIFICATION
from storebridge.notifications.service import sendgrid_event_handler
from storebridge.providers.plugin import (
    BuiltProvider,
    ProviderContext,
    ProviderPlugin,
    Sandbox,
    StandaloneSandbox,
    WebhookRoute,
)
from storebridge.providers.sendgrid.adapter import SendGridClient
from storebridge.providers.sendgrid.settings import SendGridSettings
from storebridge.providers.sendgrid.verify import load_public_key, sendgrid_source

__all__ = ["SendGridPlugin", "plugin", "SANDBOX_SENDGRID_KEY"]

SANDBOX_SENDGRID_KEY = "SG.storebridge_sandbox"


class SendGridPlugin(ProviderPlugin[SendGridSettings]):
    name = "sendgrid"
    kind = "mail"
    settings_model = SendGridSettings
    credential_variables = ("SENDGRID_API_KEY",)
    switch_off = "NOTIFICATIONS_PROVIDER=smtp with SMTP_HOST, or SENDGRID_ENABLED=false"
    description = "SendGrid e-mail (v3 Mail Send, Event Webhook)"
    priority = 10

    def uses_sandbox(self, settings: SendGridSettings) -> bool:
        return settings.sandbox

    def build(self, settings: SendGridSettings, context: ProviderContext) -> BuiltProvider:
        webhook_url = context.webhook_url(self.name)
        public_key = settings.webhook_public_key.get_secret_value() if settings.webhook_public_key else None
        sandbox: Sandbox | None = None
        if settings.sandbox:
            from storebridge.sandbox.sendgrid import SendGridSandbox  # only the plugin knows its emulator

            emulator = SendGridSandbox(webhook_url=webhook_url)
            sandbox = emulator
            api_base: str | None = settings.api_base or context.sandbox_url(self.name)
            key = SANDBOX_SENDGRID_KEY
            public_key = public_key or emulator.public_key
        else:
            assert settings.api_key is not None
            api_base, key = settings.api_base, settings.api_key.get_secret_value()
        client = SendGridClient(api_key=key, api_base=api_base, sandbox=settings.sandbox, timeout=context.http_timeout)
        problems = client.validate_config()
        if public_key is None:
            problems.append("SENDGRID_WEBHOOK_PUBLIC_KEY is not set: delivery events are refused")
        else:
            try:
                load_public_key(public_key)
            except ValueError as exc:
                raise ConfigError(f"SENDGRID_WEBHOOK_PUBLIC_KEY: {exc}") from None
        template_ids = {
            ORDER_CONFIRMATION: settings.order_confirmation_template,
            SHIPPING_NOTIFICATION: settings.shipping_template,
            REFUND_NOTICE: settings.refund_template,
        }
        return BuiltProvider(
            mode=client.mode,
            mail=client,
            mail_templates={kind: tid for kind, tid in template_ids.items() if tid},
            webhooks=(
                WebhookRoute(sendgrid_source(public_key, settings.webhook_tolerance_seconds), sendgrid_event_handler()),
            ),
            webhook_url=webhook_url,
            sandbox=sandbox,
            sandbox_url=api_base if sandbox is not None else None,
            problems=problems,
            closers=(client.aclose,),
            health_check=client.health_check,
        )

    def standalone_sandbox(self, base_url: str, webhook_url: str | None, secret: str) -> StandaloneSandbox:
        from storebridge.sandbox.sendgrid import SendGridSandbox

        return StandaloneSandbox(SendGridSandbox(webhook_url=webhook_url), (f"mailbox: {base_url}/messages",))


plugin = SendGridPlugin()
