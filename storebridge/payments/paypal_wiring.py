"""Plugs PayPal into the hub (see storebridge.capabilities): provider, webhook source and handler,
the sandbox when no credentials are set, and the auto-capture job.

CHECKOUT.ORDER.APPROVED is handled inside the inbox transaction, where no provider call may run:
the handler only records that the buyer approved (provider_status APPROVED). The `paypal-auto-capture`
worker job then confirms (captures) approved payments that asked for automatic capture, outside any
transaction, with the same idempotent PayPal-Request-Id scheme as `POST /payments/{id}/confirm`.
"""

from __future__ import annotations

import secrets
import time

import structlog
from sqlalchemy import select

from storebridge.capabilities import Wiring
from storebridge.payments.commands import ConfirmPayment
from storebridge.payments.model import Payment
from storebridge.payments.paypal import PayPalProvider, identify_paypal_event
from storebridge.payments.paypal_client import PayPalClient
from storebridge.payments.paypal_settings import load_paypal_settings
from storebridge.payments.paypal_verify import PayPalVerifier, paypal_source
from storebridge.payments.service import PaymentService, payment_webhook_handler

__all__ = ["install", "SANDBOX_CLIENT_ID", "SANDBOX_CLIENT_SECRET", "AutoCapture"]

log = structlog.get_logger("storebridge.paypal")

SANDBOX_CLIENT_ID = "storebridge-sandbox-client"
SANDBOX_CLIENT_SECRET = "storebridge-sandbox-secret"


class AutoCapture:
    """Worker job: capture PayPal payments the buyer approved that asked for automatic capture and that
    nobody confirmed within `grace_seconds` (the storefront's own confirm call goes first; this catches
    buyers who approved and never came back)."""

    def __init__(self, payments: PaymentService, *, every_seconds: float = 1.0, grace_seconds: float = 5.0) -> None:
        self.payments = payments
        self.every_seconds = every_seconds
        self.grace_seconds = grace_seconds
        self._next_run = 0.0
        self._backoff: dict[str, tuple[float, float]] = {}  # payment id -> (next try, delay)

    async def run_once(self) -> int:
        now = time.monotonic()
        if now < self._next_run:
            return 0
        self._next_run = now + self.every_seconds
        now_wall = time.time()
        async with self.payments.db.read() as session:
            ids = list(
                await session.scalars(
                    select(Payment.id)
                    .where(
                        Payment.provider == "paypal",
                        Payment.status == "pending",
                        Payment.capture_method == "automatic",
                        Payment.provider_status == "APPROVED",
                        Payment.updated_at < now_wall - self.grace_seconds,
                    )
                    .limit(100)
                )
            )
        done = 0
        for payment_id in ids:
            next_try, delay = self._backoff.get(payment_id, (0.0, 1.0))
            if now < next_try:
                continue
            try:
                await self.payments.confirm(ConfirmPayment(payment_id))
                self._backoff.pop(payment_id, None)
                done += 1
            except Exception as exc:  # noqa: BLE001 - one payment's failure must not stop the others
                self._backoff[payment_id] = (now + delay, min(delay * 2, 300.0))
                log.warning("paypal_auto_capture_failed", payment_id=payment_id, error=str(exc))
        return done


def install(wiring: Wiring) -> None:
    from storebridge.bootstrap import Integration

    cfg = load_paypal_settings()
    integration = Integration("paypal", "payments", cfg.enabled, "disabled")
    wiring.integrations["paypal"] = integration
    if not cfg.enabled:
        return
    integration.webhook_url = f"{wiring.public_url}/webhooks/paypal"
    timeout = wiring.settings.http_timeout_seconds
    sandbox_prefixes: tuple[str, ...] = ()
    variables = ("PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET", "PAYPAL_WEBHOOK_ID")
    if cfg.sandbox and not wiring.may_use_sandbox("paypal", variables, "PAYPAL_ENABLED=false"):
        return
    if cfg.sandbox:
        from storebridge.sandbox.paypal import PayPalSandbox

        webhook_id = cfg.webhook_id or "WHSANDBOX" + secrets.token_hex(8).upper()
        mounted = f"{wiring.public_url}/_sandbox/paypal"
        base_url = cfg.api_base or mounted
        sandbox = PayPalSandbox(
            base_url=mounted,
            webhook_url=integration.webhook_url,
            webhook_id=webhook_id,
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
        )
        wiring.sandboxes["paypal"] = sandbox
        integration.sandbox_url = base_url
        sandbox_prefixes = (f"{base_url.rstrip('/')}/certs/",)
        client_id, secret, mode = SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, "sandbox"
    else:
        assert cfg.client_id is not None and cfg.client_secret is not None and cfg.webhook_id is not None
        webhook_id, base_url = cfg.webhook_id, cfg.base_url
        client_id, secret = cfg.client_id, cfg.client_secret.get_secret_value()
        mode = "test" if cfg.environment == "sandbox" else "live"
    client = PayPalClient(client_id=client_id, client_secret=secret, base_url=base_url, mode=mode, timeout=timeout)
    provider = PayPalProvider(client, sandbox=cfg.sandbox)
    integration.mode = provider.mode
    integration.problems = provider.validate_config()
    verifier = PayPalVerifier(
        webhook_id=webhook_id,
        tolerance=cfg.webhook_tolerance_seconds,
        mode=cfg.verify_mode,
        sandbox_cert_prefixes=sandbox_prefixes,
        api_verify=provider.verify_webhook_signature,
    )
    wiring.payment_providers["paypal"] = provider
    wiring.webhook_sources["paypal"] = paypal_source(verifier, identify_paypal_event)
    wiring.webhook_handlers["paypal"] = payment_webhook_handler(provider)
    auto = AutoCapture(PaymentService(wiring.db, wiring.payment_providers))
    wiring.worker_jobs.append(("paypal-auto-capture", auto.run_once))
    wiring.closers.append(verifier.aclose)
