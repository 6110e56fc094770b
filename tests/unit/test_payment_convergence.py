"""Payment state is a merge of cumulative amounts: any order, any repetition, the same result."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from storebridge.events.model import OutboxEvent
from storebridge.payments.model import Payment, derive_status
from storebridge.payments.provider import ProviderPayment
from storebridge.payments.state import apply_provider_state


class RecordingSession:
    """Stands in for AsyncSession: apply_provider_state only adds outbox rows."""

    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, obj: Any) -> None:
        self.added.append(obj)


def _payment() -> Payment:
    return Payment(
        id="pay_1",
        order_id="ord_1",
        provider="stripe",
        currency="USD",
        amount=2000,
        capture_method="manual",
        amount_authorized=0,
        amount_captured=0,
        amount_refunded=0,
        failed=False,
        canceled=False,
        status="pending",
    )


# The life of one manual-capture payment, as the provider reports it over time.
STATES = [
    ProviderPayment("pi_1", "requires_payment_method", failed=True, failure_code="card_declined"),
    ProviderPayment("pi_1", "requires_capture", amount_authorized=2000),
    ProviderPayment("pi_1", "succeeded", amount_authorized=2000, amount_captured=1500),
    ProviderPayment("pi_1", "succeeded", amount_authorized=1500, amount_captured=1500, amount_refunded=500),
    ProviderPayment("pi_1", "succeeded", amount_authorized=1500, amount_captured=1500, amount_refunded=1500),
]


def _apply_all(states: list[ProviderPayment]) -> tuple[tuple[Any, ...], list[OutboxEvent]]:
    payment, session = _payment(), RecordingSession()
    for state in states:
        apply_provider_state(session, payment, state)  # type: ignore[arg-type]
    events = [e for e in session.added if isinstance(e, OutboxEvent)]
    final = (
        payment.amount_authorized,
        payment.amount_captured,
        payment.amount_refunded,
        payment.failed,
        payment.canceled,
        derive_status(payment),
    )
    return final, events


def _summary(events: list[OutboxEvent]) -> dict[str, int]:
    """Per event type: how much it moved (delta summed), or 1 for the one-way flags."""
    out: dict[str, int] = {}
    for e in events:
        out[e.type] = out.get(e.type, 0) + int(e.payload.get("delta", 1))
    return out


@given(st.lists(st.sampled_from(range(len(STATES))), min_size=len(STATES), max_size=3 * len(STATES)))
def test_shuffled_and_repeated_states_converge(order: list[int]) -> None:
    """Every state at least once, in any order, repeated: same amounts, same status, same events and totals."""
    sequence = [STATES[i] for i in order] + STATES  # make sure each appears at least once
    final, events = _apply_all(sequence)
    expected_final, expected_events = _apply_all(STATES)
    assert final == expected_final
    assert _summary(events) == _summary(expected_events)
    for once in ("payment.captured", "payment.failed"):
        assert [e.type for e in events].count(once) == 1


def test_the_in_order_story_emits_each_event_once() -> None:
    """In order: failed, authorized, captured, refunded twice; status ends refunded."""
    final, events = _apply_all(STATES)
    assert final[-1] == "refunded"
    assert sorted(e.type for e in events) == sorted(
        ["payment.failed", "payment.authorized", "payment.captured", "payment.refunded", "payment.refunded"]
    )
