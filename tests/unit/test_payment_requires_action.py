"""requires_action (3-D Secure, payer action): how providers report it, how it merges, what the API shows."""

from __future__ import annotations

from typing import Any

from storebridge.api.schemas import payment_out
from storebridge.events.model import OutboxEvent
from storebridge.payments.model import Payment
from storebridge.payments.provider import ProviderPayment
from storebridge.payments.state import apply_provider_state
from storebridge.providers.paypal.adapter import payment_from_order
from storebridge.providers.stripe.adapter import payment_from_intent
from tests.unit.test_paypal_spec import check_response

PAYER_ACTION_ORDER: dict[str, Any] = {
    "id": "5O190127TN364715T",
    "intent": "CAPTURE",
    "status": "PAYER_ACTION_REQUIRED",
    "payment_source": {"card": {"last_digits": "3184", "brand": "VISA", "type": "CREDIT"}},
    "purchase_units": [
        {
            "reference_id": "ord_1",
            "custom_id": "pay_1",
            "amount": {"currency_code": "USD", "value": "20.00"},
        }
    ],
    "links": [
        {"href": "https://api-m.paypal.com/v2/checkout/orders/5O190127TN364715T", "rel": "self", "method": "GET"},
        {
            "href": "https://www.paypal.com/webapps/helios?action=authenticate&token=5O190127TN364715T",
            "rel": "payer-action",
            "method": "GET",
        },
    ],
}


class RecordingSession:
    """Stands in for AsyncSession: apply_provider_state only adds outbox rows."""

    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, obj: Any) -> None:
        self.added.append(obj)

    def types(self) -> list[str]:
        return [e.type for e in self.added if isinstance(e, OutboxEvent)]


def _payment(provider: str = "stripe") -> Payment:
    return Payment(
        id="pay_1",
        order_id="ord_1",
        provider=provider,
        currency="USD",
        amount=2000,
        capture_method="automatic",
        amount_authorized=0,
        amount_captured=0,
        amount_refunded=0,
        failed=False,
        canceled=False,
        status="pending",
        created_at=0.0,
        updated_at=0.0,
    )


def test_the_payer_action_order_is_shaped_as_paypal_answers_it() -> None:
    """The PAYER_ACTION_REQUIRED body used below matches PayPal's own schema for GET /v2/checkout/orders/{id}."""
    check_response("GET", "/v2/checkout/orders/5O190127TN364715T", 200, PAYER_ACTION_ORDER)


def test_paypal_payer_action_required_is_requires_action_with_the_payer_action_link() -> None:
    """PAYER_ACTION_REQUIRED: status requires_action, next_action redirect_to_url with the payer-action link."""
    state = payment_from_order(PAYER_ACTION_ORDER)
    assert state.requires_action is True
    assert state.action_url == "https://www.paypal.com/webapps/helios?action=authenticate&token=5O190127TN364715T"
    payment, session = _payment("paypal"), RecordingSession()
    apply_provider_state(session, payment, state)  # type: ignore[arg-type]
    assert payment.status == "requires_action"
    assert payment_out(payment)["next_action"] == {
        "type": "redirect_to_url",
        "redirect_to_url": {"url": state.action_url},
    }
    assert session.types() == ["payment.requires_action"]
    completed = {
        **PAYER_ACTION_ORDER,
        "status": "COMPLETED",
        "links": [],
        "purchase_units": [
            {
                **PAYER_ACTION_ORDER["purchase_units"][0],
                "payments": {
                    "captures": [
                        {"id": "C1", "status": "COMPLETED", "amount": {"currency_code": "USD", "value": "20.00"}}
                    ]
                },
            }
        ],
    }
    apply_provider_state(session, payment, payment_from_order(completed))  # type: ignore[arg-type]
    assert payment.status == "captured" and payment_out(payment)["next_action"] is None
    assert session.types() == ["payment.requires_action", "payment.authorized", "payment.captured"]


def test_paypal_created_and_approved_orders_do_not_require_action() -> None:
    """A new order (CREATED) says nothing about an action; APPROVED says the action is over."""
    created = {"id": "O2", "status": "CREATED", "links": [{"rel": "approve", "href": "https://x/approve/O2"}]}
    assert payment_from_order(created).requires_action is None
    assert payment_from_order({"id": "O2", "status": "APPROVED"}).requires_action is False


def test_stripe_next_action_shapes() -> None:
    """Stripe requires_action with redirect_to_url keeps the URL; use_stripe_sdk answers with the client secret."""
    redirect = {
        "id": "pi_1",
        "status": "requires_action",
        "client_secret": "pi_1_secret_x",
        "next_action": {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": "https://hooks.stripe.com/3d_secure_2/x", "return_url": "https://shop/r"},
        },
    }
    state = payment_from_intent(redirect)
    assert (state.requires_action, state.action_url) == (True, "https://hooks.stripe.com/3d_secure_2/x")
    sdk = {**redirect, "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "stripe_3ds2_fingerprint"}}}
    payment = _payment()
    apply_provider_state(RecordingSession(), payment, payment_from_intent(sdk))  # type: ignore[arg-type]
    assert payment_out(payment)["next_action"] == {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {"client_secret": "pi_1_secret_x"},
    }
    assert payment_from_intent({"id": "pi_1", "status": "requires_payment_method"}).requires_action is None
    assert payment_from_intent({"id": "pi_1", "status": "succeeded"}).requires_action is False


def test_a_stale_snapshot_does_not_undo_requires_action() -> None:
    """payment_intent.created arriving after the confirmation keeps requires_action, and the event is not repeated."""
    payment, session = _payment(), RecordingSession()
    action = ProviderPayment("pi_1", "requires_action", client_secret="s", requires_action=True)
    created = ProviderPayment("pi_1", "requires_payment_method", client_secret="s")
    for state in (action, created, action, created):
        apply_provider_state(session, payment, state)  # type: ignore[arg-type]
        assert payment.status == "requires_action"
    assert session.types() == ["payment.requires_action"]
    failed = ProviderPayment(
        "pi_1", "requires_payment_method", failed=True, failure_code="payment_intent_authentication_failure"
    )
    apply_provider_state(session, payment, failed)  # type: ignore[arg-type]
    assert payment.status == "failed" and payment.live_order_id is None
    apply_provider_state(session, payment, action)  # a late requires_action event: failed stays failed
    assert payment.status == "failed"
    assert session.types() == ["payment.requires_action", "payment.failed"]


def test_a_new_confirmation_replaces_the_redirect() -> None:
    """Confirmed again without return_url, Stripe answers use_stripe_sdk: the earlier redirect URL is not shown."""
    payment, session = _payment(), RecordingSession()
    redirect = ProviderPayment(
        "pi_1", "requires_action", client_secret="s", action_url="https://a", requires_action=True
    )
    sdk = ProviderPayment("pi_1", "requires_action", client_secret="s", requires_action=True)
    apply_provider_state(session, payment, redirect)  # type: ignore[arg-type]
    assert payment_out(payment)["next_action"]["type"] == "redirect_to_url"
    apply_provider_state(session, payment, sdk)  # type: ignore[arg-type]
    assert payment_out(payment)["next_action"] == {"type": "use_stripe_sdk", "use_stripe_sdk": {"client_secret": "s"}}
    assert session.types() == ["payment.requires_action"]
