"""The `paypal-auto-capture` worker job.

CHECKOUT.ORDER.APPROVED is handled inside the inbox transaction, where no provider call may run:
the handler only records that the buyer approved (provider_status APPROVED). This job then confirms
(captures) approved payments that asked for automatic capture, outside any transaction, with the
same idempotent PayPal-Request-Id scheme as `POST /payments/{id}/confirm`.
"""

from __future__ import annotations

import time

import structlog
from sqlalchemy import select

from storebridge.payments.commands import ConfirmPayment
from storebridge.payments.model import Payment
from storebridge.payments.service import PaymentService

__all__ = ["AutoCapture"]

log = structlog.get_logger("storebridge.paypal")


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
