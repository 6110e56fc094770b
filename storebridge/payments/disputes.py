"""Disputes (chargebacks and inquiries) on payments: applying what a provider says, idempotently.

A provider's dispute webhook carries the whole dispute (ProviderDispute). It is upserted by
(provider, provider_ref) with the payment row locked, so concurrent or repeated deliveries apply
one after the other, and merged so that any order of deliveries ends in the same row:

- the status only moves forward, by `STATUS_RANK` (inquiry → chargeback → under review → closed);
  a delivery ranked below the row's status (a `created` after a `closed`, a replayed older event)
  changes nothing but the one-way funds flags; a closed dispute never changes outcome;
- `funds_withdrawn` / `funds_reinstated` are one-way flags, set by the matching events.

Events are recorded in the same transaction, only when the row changed, so a duplicate delivery
records none: `payment.disputed` when the dispute is first seen, `payment.dispute_closed` when it
reaches won/lost/warning_closed, `payment.dispute_updated` for any other change.

`payments.amount_disputed` is what the payment's disputes put at stake: the sum of the amounts of
its disputes that are open or lost. A dispute won (or an inquiry closed without a chargeback)
counts 0, since the merchant keeps that money.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.events.bus import record_event
from storebridge.events.catalogue import EventType
from storebridge.ids import new_id
from storebridge.payments.events import (
    PAYMENT_DISPUTE_CLOSED,
    PAYMENT_DISPUTE_UPDATED,
    PAYMENT_DISPUTED,
    DisputePayload,
)
from storebridge.payments.model import Dispute, Payment
from storebridge.payments.provider import ProviderDispute
from storebridge.webhooks.processor import RetryLater

__all__ = [
    "STATUS_RANK",
    "CLOSED_STATUSES",
    "MERCHANT_KEEPS",
    "apply_dispute",
    "dispute_event_payload",
    "disputes_of",
    "is_open",
]

STATUS_RANK = {
    "warning_needs_response": 1,
    "warning_under_review": 2,
    "needs_response": 3,
    "under_review": 4,
    "warning_closed": 5,
    "won": 5,
    "lost": 5,
}
CLOSED_STATUSES = frozenset({"warning_closed", "won", "lost"})
MERCHANT_KEEPS = frozenset({"warning_closed", "won"})  # closed in the merchant's favour: nothing at stake


def is_open(status: str) -> bool:
    return status not in CLOSED_STATUSES


def dispute_event_payload(d: Dispute, payment: Payment) -> DisputePayload:
    return DisputePayload(
        dispute_id=d.id,
        payment_id=d.payment_id,
        order_id=d.order_id,
        provider=d.provider,
        provider_ref=d.provider_ref,
        amount=d.amount,
        currency=d.currency,
        reason=d.reason,
        status=d.status,
        evidence_due_by=None if d.evidence_due_by is None else datetime.fromtimestamp(d.evidence_due_by, UTC),
        funds_withdrawn=d.funds_withdrawn,
        funds_reinstated=d.funds_reinstated,
        amount_disputed=payment.amount_disputed,
    )


async def _payment_of(session: AsyncSession, provider: str, d: ProviderDispute) -> Payment:
    """The disputed payment, row-locked; RetryLater when none matches yet (it may not be committed)."""
    payment = None
    if d.payment_id:
        payment = await session.get(Payment, d.payment_id, with_for_update=True)
        if payment is not None and payment.provider != provider:
            payment = None
    if payment is None and d.payment_ref:
        payment = await session.scalar(
            select(Payment).where(Payment.provider == provider, Payment.provider_ref == d.payment_ref).with_for_update()
        )
    if payment is None:
        pairs = (("payment", d.payment_id or d.payment_ref), ("charge", d.charge_ref))
        refs = ", ".join(f"{k} {v}" for k, v in pairs if v)
        raise RetryLater(f"no payment matches {provider} dispute {d.provider_ref} ({refs or 'no payment reference'})")
    return payment


def _merge(row: Dispute, d: ProviderDispute) -> bool:
    """Merge a delivery into an existing row; True when anything changed."""
    before = (row.status, row.amount, row.currency, row.reason, row.evidence_due_by)
    flags = (row.funds_withdrawn, row.funds_reinstated)
    row.funds_withdrawn = row.funds_withdrawn or d.funds_withdrawn
    row.funds_reinstated = row.funds_reinstated or d.funds_reinstated
    old_rank, new_rank = STATUS_RANK.get(row.status, 0), STATUS_RANK.get(d.status, 0)
    closed_elsewhere = row.status in CLOSED_STATUSES and d.status != row.status
    if new_rank >= old_rank and not closed_elsewhere:
        row.status = d.status
        row.amount, row.currency = d.amount, d.currency or row.currency
        row.reason = d.reason or row.reason
        row.evidence_due_by = d.evidence_due_by if d.evidence_due_by is not None else row.evidence_due_by
    return (row.status, row.amount, row.currency, row.reason, row.evidence_due_by) != before or flags != (
        row.funds_withdrawn,
        row.funds_reinstated,
    )


async def apply_dispute(
    session: AsyncSession, provider: str, d: ProviderDispute, *, request_id: str | None = None
) -> Payment:
    """Upsert the dispute, refresh the payment's amount_disputed, record the events its change calls for."""
    payment = await _payment_of(session, provider, d)
    row = await session.scalar(
        select(Dispute).where(Dispute.provider == provider, Dispute.provider_ref == d.provider_ref)
    )
    emitted: list[EventType[DisputePayload]] = []
    if row is None:
        row = Dispute(
            id=new_id("dsp"),
            payment_id=payment.id,
            order_id=payment.order_id,
            provider=provider,
            provider_ref=d.provider_ref,
            amount=d.amount,
            currency=d.currency or payment.currency,
            reason=d.reason,
            status=d.status,
            evidence_due_by=d.evidence_due_by,
            funds_withdrawn=d.funds_withdrawn,
            funds_reinstated=d.funds_reinstated,
        )
        session.add(row)
        emitted.append(PAYMENT_DISPUTED)
        if row.status in CLOSED_STATUSES:  # first seen already closed: both facts, in order
            emitted.append(PAYMENT_DISPUTE_CLOSED)
    else:
        was_open = is_open(row.status)
        if _merge(row, d):
            emitted.append(PAYMENT_DISPUTE_CLOSED if was_open and not is_open(row.status) else PAYMENT_DISPUTE_UPDATED)
    await session.flush()
    disputes = (await session.scalars(select(Dispute).where(Dispute.payment_id == payment.id))).all()
    payment.amount_disputed = sum(x.amount for x in disputes if x.status not in MERCHANT_KEEPS)
    for event_type in emitted:
        record_event(
            session,
            event_type,
            dispute_event_payload(row, payment),
            aggregate_id=payment.id,
            order_id=payment.order_id,
            request_id=request_id,
        )
    return payment


async def disputes_of(session: AsyncSession, payment_ids: list[str]) -> dict[str, list[Dispute]]:
    """Each payment's disputes, oldest first (payments without any are absent)."""
    out: dict[str, list[Dispute]] = {}
    if not payment_ids:
        return out
    rows = await session.scalars(
        select(Dispute).where(Dispute.payment_id.in_(payment_ids)).order_by(Dispute.created_at, Dispute.id)
    )
    for row in rows:
        out.setdefault(row.payment_id, []).append(row)
    return out
