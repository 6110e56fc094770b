"""The payment service: one handler per command, and the webhook handler for payment providers.

Provider calls never run inside a database transaction (a slow provider must not hold the
SQLite write lock): each handler commits what it is about to do, calls the provider with an
idempotency key derived from our own ids, then commits what the provider answered.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import Database
from storebridge.errors import InvalidRequest, NotFound, PaymentDeclined, ProviderRejected
from storebridge.ids import new_id
from storebridge.orders.model import Order
from storebridge.orders.stock import StockHold
from storebridge.payments.commands import CancelPayment, CapturePayment, ConfirmPayment, CreatePayment, RefundPayment
from storebridge.payments.disputes import apply_dispute, disputes_of
from storebridge.payments.model import INITIAL_STATUS, Dispute, Payment, Refund
from storebridge.payments.provider import PaymentProvider, PaymentRequest, ProviderPayment
from storebridge.payments.state import apply_provider_state, refresh_order_payment_status
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.processor import RetryLater, WebhookHandler

__all__ = ["PaymentService", "payment_webhook_handler"]


class PaymentService:
    def __init__(self, db: Database, providers: Mapping[str, PaymentProvider], stock: StockHold | None = None) -> None:
        self.db = db
        self.providers = providers
        self.stock = stock  # None when the inventory capability is off

    async def _hold_stock(self, session: AsyncSession, order: Order) -> None:
        """A payment never goes ahead on an order whose stock is no longer held: re-reserve, or 409."""
        if self.stock is not None:
            await self.stock.ensure_held(session, order.id, [(i.sku, i.quantity) for i in order.items])

    def provider(self, name: str) -> PaymentProvider:
        try:
            return self.providers[name]
        except KeyError:
            enabled = ", ".join(sorted(self.providers)) or "none"
            raise InvalidRequest(
                f"payment provider {name!r} is not enabled (enabled: {enabled})",
                code="provider_not_enabled",
                status=422,
            ) from None

    async def get(self, payment_id: str) -> Payment:
        async with self.db.read() as session:
            return await _load(session, payment_id)

    async def disputes(self, payment_ids: list[str]) -> dict[str, list[Dispute]]:
        """Each payment's disputes, oldest first."""
        async with self.db.read() as session:
            return await disputes_of(session, payment_ids)

    async def _apply(self, payment_id: str, state: ProviderPayment, request_id: str | None = None) -> Payment:
        async with self.db.write() as session:
            payment = await _load(session, payment_id, lock=True)
            apply_provider_state(session, payment, state, request_id=request_id)
            await refresh_order_payment_status(session, payment.order_id)
            return payment

    async def create(self, cmd: CreatePayment) -> Payment:
        """Open the order's one live payment and initiate it with the provider.

        The order row is locked and the payment takes the order's live slot (`live_order_id`, unique):
        a second live payment, from a retry or a concurrent checkout, is refused by the database."""
        provider = self.provider(cmd.provider)
        if cmd.capture_method not in ("automatic", "manual"):
            raise InvalidRequest("capture_method must be 'automatic' or 'manual'", status=422)
        async with self.db.write() as session:
            order = await session.get(Order, cmd.order_id, with_for_update=True)
            if order is None:
                raise NotFound("order", cmd.order_id)
            if order.total <= 0:
                raise InvalidRequest(
                    f"order {order.id} totals 0 {order.currency}: there is nothing to charge", status=422
                )
            await self._hold_stock(session, order)
            payment = Payment(
                id=new_id("pay"),
                order_id=order.id,
                provider=provider.name,
                currency=order.currency,
                amount=order.total,
                capture_method=cmd.capture_method,
                payment_method=cmd.payment_method,
                status=INITIAL_STATUS,
            )
            await _take_live_slot(session, payment)
            await refresh_order_payment_status(session, order.id)
            email = order.email
        try:
            return await self._initiate(payment, email)
        except ProviderRejected:
            await self._discard(payment.id)  # the provider refused the request: nothing is left open
            raise

    async def _discard(self, payment_id: str) -> None:
        """Remove a payment the provider refused to create (it never had a provider state)."""
        async with self.db.write() as session:
            payment = await session.get(Payment, payment_id, with_for_update=True)
            if payment is not None and payment.provider_ref is None:
                await session.delete(payment)
                await session.flush()
                await refresh_order_payment_status(session, payment.order_id)

    async def _initiate(self, payment: Payment, email: str | None) -> Payment:
        request = PaymentRequest(
            payment_id=payment.id,
            order_id=payment.order_id,
            amount=payment.amount,
            currency=payment.currency,
            capture_method=payment.capture_method,
            payment_method=payment.payment_method,
            email=email,
            description=f"storebridge order {payment.order_id}",
        )
        state = await self.provider(payment.provider).initiate(request)
        return await self._apply(payment.id, state)

    async def confirm(self, cmd: ConfirmPayment) -> Payment:
        async with self.db.write() as session:
            payment = await _load(session, cmd.payment_id, lock=True)
            if payment.status in ("captured", "partially_refunded", "refunded", "canceled"):
                return payment  # nothing left to confirm: answering with the payment is the idempotent reply
            order = await session.get(Order, payment.order_id, with_for_update=True)
            assert order is not None
            if payment.live_order_id is None:  # a failed payment tried again takes the order's slot back
                await _take_live_slot(session, payment)
            await self._hold_stock(session, order)
            payment.confirm_attempts += 1
            if cmd.payment_method:
                payment.payment_method = cmd.payment_method
            attempt = payment.confirm_attempts
        if payment.provider_ref is None:  # initiation failed earlier: retry it with the same idempotency key
            payment = await self._initiate(payment, None)
        assert payment.provider_ref is not None
        try:
            state = await self.provider(payment.provider).confirm(
                payment.provider_ref,
                payment_id=payment.id,
                payment_method=cmd.payment_method,
                attempt=attempt,
                return_url=cmd.return_url,
            )
        except PaymentDeclined as exc:
            if isinstance(exc.payment_state, ProviderPayment):
                exc.payment_state = await self._apply(payment.id, exc.payment_state)
            raise
        return await self._apply(payment.id, state)

    async def capture(self, cmd: CapturePayment) -> Payment:
        payment = await self.get(cmd.payment_id)
        capturable = payment.amount_authorized - payment.amount_captured
        if payment.status in ("captured", "partially_refunded", "refunded") and cmd.amount is None:
            return payment
        if payment.status != "authorized" or capturable <= 0:
            raise InvalidRequest(f"payment is {payment.status}; only an authorized payment can be captured")
        if cmd.amount is not None and not 0 < cmd.amount <= capturable:
            raise InvalidRequest(f"amount must be between 1 and {capturable} (the authorized amount)", status=422)
        async with self.db.write() as session:  # the authorization may have outlived the reservation
            order = await session.get(Order, payment.order_id, with_for_update=True)
            assert order is not None
            await self._hold_stock(session, order)
        assert payment.provider_ref is not None
        state = await self.provider(payment.provider).capture(
            payment.provider_ref, payment_id=payment.id, amount=cmd.amount, currency=payment.currency
        )
        return await self._apply(payment.id, state)

    async def refund(self, cmd: RefundPayment) -> tuple[Payment, Refund]:
        async with self.db.write() as session:
            payment = await _load(session, cmd.payment_id, lock=True)
            pending = await session.scalar(
                select(func.coalesce(func.sum(Refund.amount), 0)).where(
                    Refund.payment_id == payment.id, Refund.status == "pending"
                )
            )
            refundable = payment.amount_captured - max(payment.amount_refunded, 0) - int(pending or 0)
            if refundable <= 0:
                raise InvalidRequest(f"nothing left to refund: payment is {payment.status}", code="nothing_to_refund")
            amount = refundable if cmd.amount is None else cmd.amount
            if not 0 < amount <= refundable:
                raise InvalidRequest(f"amount must be between 1 and {refundable} (what is left)", status=422)
            refund = Refund(id=new_id("ref"), payment_id=payment.id, amount=amount, reason=cmd.reason)
            session.add(refund)
        assert payment.provider_ref is not None
        try:
            result = await self.provider(payment.provider).refund(
                payment.provider_ref,
                payment_id=payment.id,
                refund_id=refund.id,
                amount=amount,
                reason=cmd.reason,
                currency=payment.currency,
            )
        except Exception:
            async with self.db.write() as session:
                row = await session.get(Refund, refund.id)
                if row is not None:
                    row.status = "failed"
            raise
        async with self.db.write() as session:
            row = await session.get(Refund, refund.id)
            assert row is not None
            row.status, row.provider_ref = result.status, result.provider_ref or None
            await session.flush()
            refunded = await session.scalar(
                select(func.coalesce(func.sum(Refund.amount), 0)).where(
                    Refund.payment_id == payment.id, Refund.status == "succeeded"
                )
            )
            current = await session.get(Payment, payment.id, with_for_update=True)
            assert current is not None
            state = ProviderPayment(
                provider_ref=payment.provider_ref,
                provider_status=current.provider_status or "",
                amount_refunded=int(refunded or 0),
            )
            apply_provider_state(session, current, state)
            await refresh_order_payment_status(session, current.order_id)
            return current, row

    async def cancel(self, cmd: CancelPayment) -> Payment:
        payment = await self.get(cmd.payment_id)
        if payment.status == "canceled":
            return payment
        if payment.amount_captured > 0:
            raise InvalidRequest(f"payment is {payment.status}; refund it instead of canceling")
        if payment.provider_ref is None:  # never reached the provider: cancel it here alone
            return await self._apply(payment.id, ProviderPayment("", "canceled", canceled=True))
        state = await self.provider(payment.provider).cancel(payment.provider_ref, payment_id=payment.id)
        return await self._apply(payment.id, state)

    async def reconcile(self, payment_id: str) -> Payment:
        """Re-read a payment from its provider and converge (the reconciler's unit of work)."""
        payment = await self.get(payment_id)
        if payment.provider_ref is None:
            return payment
        state = await self.provider(payment.provider).retrieve(payment.provider_ref)
        return await self._apply(payment.id, state)


async def _take_live_slot(session: AsyncSession, payment: Payment) -> None:
    """Flush `payment` holding its order's live slot; the unique index refuses a second live payment
    (a 409 naming the live one). The savepoint keeps the transaction usable to look that one up."""
    order_id = payment.order_id
    try:
        async with session.begin_nested():  # (begin_nested flushes what is pending first: set the slot inside)
            payment.live_order_id = order_id
            session.add(payment)
            await session.flush()
    except IntegrityError:
        live = await session.scalar(select(Payment).where(Payment.live_order_id == order_id))
        if live is None:
            raise
        if live.status in ("captured", "partially_refunded"):
            message = f"order {order_id} is already paid: payment {live.id} is {live.status}"
            code = "order_already_paid"
        else:
            message = (
                f"order {order_id} already has a live payment {live.id} ({live.status}): "
                "confirm, capture or cancel it instead of opening another"
            )
            code = "payment_in_progress"
        raise InvalidRequest(message, code=code, status=409, details={"payment_id": live.id}) from None


async def _load(session: AsyncSession, payment_id: str, *, lock: bool = False) -> Payment:
    """The payment, or NotFound. `lock`: on PostgreSQL take the row lock, so an API call and a webhook
    applying provider states at the same moment merge one after the other instead of losing one."""
    payment = await session.get(Payment, payment_id, with_for_update=lock)
    if payment is None:
        raise NotFound("payment", payment_id)
    return payment


async def _find_payment(
    session: AsyncSession, provider: str, payment_id: str | None, provider_ref: str | None, *, lock: bool
) -> Payment | None:
    """Our payment by its id, else by the provider's reference to it."""
    payment = await session.get(Payment, payment_id, with_for_update=lock) if payment_id else None
    if payment is None and provider_ref:
        query = select(Payment).where(Payment.provider == provider, Payment.provider_ref == provider_ref)
        payment = await session.scalar(query.with_for_update() if lock else query)
    return payment


def payment_webhook_handler(provider: PaymentProvider) -> WebhookHandler:
    """The inbox handler for a payment provider: parse with the adapter, converge the payment."""

    async def handle(row: WebhookEvent, session: AsyncSession) -> str | None:
        update = provider.parse_webhook(row.body, row.headers)
        if update.dispute is not None:
            disputed = await apply_dispute(session, provider.name, update.dispute, request_id=row.request_id)
            return disputed.order_id
        state = update.payment
        if state is None:  # an event type we do not act on: processed, with no effect but its order link
            named = update.mention
            if named is None:
                return None
            mentioned = await _find_payment(session, provider.name, named.payment_id, named.provider_ref, lock=False)
            return mentioned.order_id if mentioned is not None else None
        payment = await _find_payment(session, provider.name, state.payment_id, state.provider_ref, lock=True)
        if payment is None:
            # It may be ours and not committed yet, or not ours at all: retry, then dead-letter.
            raise RetryLater(f"no payment matches {provider.name} {state.provider_ref} ({update.event_type})")
        apply_provider_state(session, payment, state, request_id=row.request_id)
        await refresh_order_payment_status(session, payment.order_id)
        return payment.order_id

    return handle
