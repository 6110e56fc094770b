"""Plugs transactional e-mail into the hub: settings, the mail provider (SendGrid, its sandbox, or SMTP),
the event triggers, the send job, the SendGrid Event Webhook and the API routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storebridge.notifications.commands import ORDER_CONFIRMATION, REFUND_NOTICE, SHIPPING_NOTIFICATION
from storebridge.payments.events import PAYMENT_CAPTURED, PAYMENT_REFUNDED
from storebridge.shipping.events import SHIPMENT_LABEL_PURCHASED, SHIPMENT_UPDATED

if TYPE_CHECKING:
    from storebridge.capabilities import Wiring

__all__ = ["install", "SANDBOX_SENDGRID_KEY"]

SANDBOX_SENDGRID_KEY = "SG.storebridge_sandbox"


def install(wiring: Wiring) -> None:
    from storebridge.bootstrap import Integration
    from storebridge.notifications.api import notifications_router
    from storebridge.notifications.provider import MailProvider
    from storebridge.notifications.render import Renderer
    from storebridge.notifications.service import NotificationService, SendPolicy, sendgrid_event_handler
    from storebridge.notifications.settings import load_notification_settings

    cfg = load_notification_settings()
    provider: MailProvider
    templates: dict[str, str] = {}
    api_base: str | None
    if cfg.provider == "smtp":
        from storebridge.notifications.smtp import SmtpMailer

        provider = SmtpMailer(
            host=cfg.smtp_host,
            port=cfg.smtp_port,
            username=cfg.smtp_user,
            password=cfg.smtp_password.get_secret_value() if cfg.smtp_password else None,
            starttls=cfg.smtp_starttls,
            use_tls=cfg.smtp_tls,
            timeout=cfg.smtp_timeout_seconds,
        )
        integration = Integration("smtp", "email", True, "live")
        integration.problems = provider.validate_config()
        wiring.integrations["smtp"] = integration
    else:
        integration = Integration("sendgrid", "email", cfg.enabled, "disabled")
        wiring.integrations["sendgrid"] = integration
        if not cfg.enabled:
            return
        from storebridge.notifications.sendgrid import SendGridClient
        from storebridge.notifications.sendgrid_verify import load_public_key, sendgrid_source

        switch_off = "NOTIFICATIONS_PROVIDER=smtp with SMTP_HOST, or SENDGRID_ENABLED=false"
        if cfg.sandbox and not wiring.may_use_sandbox("sendgrid", ("SENDGRID_API_KEY",), switch_off):
            return
        integration.webhook_url = f"{wiring.public_url}/webhooks/sendgrid"
        public_key = cfg.webhook_public_key.get_secret_value() if cfg.webhook_public_key else None
        if cfg.sandbox:
            from storebridge.sandbox.sendgrid import SendGridSandbox

            sandbox = SendGridSandbox(webhook_url=integration.webhook_url)
            wiring.sandboxes["sendgrid"] = sandbox
            api_base = cfg.api_base or f"{wiring.public_url}/_sandbox/sendgrid"
            integration.sandbox_url = api_base
            key = SANDBOX_SENDGRID_KEY
            public_key = public_key or sandbox.public_key
        else:
            assert cfg.api_key is not None
            api_base, key = cfg.api_base, cfg.api_key.get_secret_value()
        client = SendGridClient(
            api_key=key, api_base=api_base, sandbox=cfg.sandbox, timeout=wiring.settings.http_timeout_seconds
        )
        provider = client
        integration.mode = client.mode
        integration.problems = client.validate_config()
        if public_key is None:
            integration.problems.append("SENDGRID_WEBHOOK_PUBLIC_KEY is not set: delivery events are refused")
        else:
            try:
                load_public_key(public_key)
            except ValueError as exc:
                from storebridge.errors import ConfigError

                raise ConfigError(f"SENDGRID_WEBHOOK_PUBLIC_KEY: {exc}") from None
        wiring.webhook_sources["sendgrid"] = sendgrid_source(public_key, cfg.webhook_tolerance_seconds)
        wiring.webhook_handlers["sendgrid"] = sendgrid_event_handler()
        ids = {
            ORDER_CONFIRMATION: cfg.order_confirmation_template,
            SHIPPING_NOTIFICATION: cfg.shipping_template,
            REFUND_NOTICE: cfg.refund_template,
        }
        templates = {kind: tid for kind, tid in ids.items() if tid}
    service = NotificationService(
        wiring.db,
        provider,
        Renderer(override_dir=cfg.templates_dir, locale=cfg.locale),
        SendPolicy(
            from_email=cfg.from_email,
            from_name=cfg.from_name,
            templates=templates,
            max_attempts=cfg.max_attempts,
            retry_base=wiring.settings.retry_base_seconds,
            retry_cap=wiring.settings.retry_max_seconds,
        ),
    )
    wiring.bus.subscribe(
        "notifications",
        (PAYMENT_CAPTURED, PAYMENT_REFUNDED, SHIPMENT_LABEL_PURCHASED, SHIPMENT_UPDATED),
        service.on_event,
    )
    wiring.worker_jobs.append(("notifications", service.send_due))
    wiring.services["notifications"] = service
    wiring.services["mail_provider"] = provider
    wiring.health_checks[provider.name] = provider.health_check
    wiring.routers.append(notifications_router(service))
    wiring.closers.append(provider.aclose)
