"""The event catalogue: each type declared once, in its capability, with a valid payload schema."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, get_args

import pytest
from jsonschema import Draft202012Validator

from storebridge.events.bus import record_event
from storebridge.events.catalogue import EVENT_MODULES, Catalogue, EventType, load_catalogue
from storebridge.events.catalogue_doc import render_markdown
from storebridge.notifications.commands import KINDS
from storebridge.notifications.events import NotificationPayload
from storebridge.notifications.model import STATUS_RANK
from storebridge.payments.events import PAYMENT_CAPTURED, PaymentDeltaPayload
from storebridge.shipping.events import FulfillmentStatus
from storebridge.shipping.model import FULFILLMENT_STATUSES
from storebridge.webhooks.events import CUSTOM_WEBHOOK


def test_every_capability_lists_every_type_it_declares() -> None:
    """Each events module's EVENT_TYPES holds every EventType constant the module defines."""
    for name in EVENT_MODULES:
        module = importlib.import_module(name)
        declared = {v for v in vars(module).values() if isinstance(v, EventType)}
        assert declared == set(module.EVENT_TYPES), name


def test_catalogue_holds_the_known_types_with_valid_schemas() -> None:
    """The catalogue holds every type the hub records, each payload schema a valid JSON Schema object."""
    catalogue = load_catalogue()
    names = {t.name for t in catalogue}
    assert {
        "order.placed",
        "order.overpaid",
        "payment.captured",
        "payment.requires_action",
        "payment.disputed",
        "shipment.label_purchased",
        "shipment.updated",
        "inventory.level_changed",
        "notification.sent",
        "webhook.*",
    } <= names
    assert len(catalogue) == 21
    for t in catalogue:
        schema = t.schema()
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object" and schema["required"], t.name
        assert t.description.endswith("."), t.name


def test_a_type_is_declared_once() -> None:
    """Declaring a name twice is refused."""
    with pytest.raises(ValueError, match="declared twice"):
        Catalogue([PAYMENT_CAPTURED, EventType("payment.captured", "Again.", PaymentDeltaPayload)])


def test_families_find_their_members() -> None:
    """webhook.acme.order.paid is found as a member of webhook.*; unknown types are not found."""
    catalogue = load_catalogue()
    member = CUSTOM_WEBHOOK.member("acme.order.paid")
    assert member.name == "webhook.acme.order.paid"
    assert catalogue.find(member.name) is CUSTOM_WEBHOOK
    assert catalogue.find("payment.captured") is PAYMENT_CAPTURED
    assert catalogue.find("payment.teleported") is None
    with pytest.raises(ValueError):
        PAYMENT_CAPTURED.member("x")


def test_the_events_page_is_in_step_with_the_catalogue() -> None:
    """docs/events.md is what `python -m storebridge.events.catalogue_doc` writes today."""
    page = Path(__file__).parents[2] / "docs" / "events.md"
    assert page.read_text(encoding="utf-8") == render_markdown(load_catalogue()), (
        "docs/events.md is stale: python -m storebridge.events.catalogue_doc > docs/events.md"
    )
    for t in load_catalogue():
        assert f"## `{t.name}`" in page.read_text(encoding="utf-8")


def test_closed_vocabularies_match_the_models() -> None:
    """The payloads' status enums are the statuses the models can hold."""
    assert get_args(FulfillmentStatus) == FULFILLMENT_STATUSES
    properties = NotificationPayload.model_json_schema()["properties"]
    assert set(properties["kind"]["enum"]) == set(KINDS)
    assert set(properties["status"]["enum"]) == set(STATUS_RANK)


def test_record_event_takes_only_a_concrete_declared_type() -> None:
    """A bare string or a family (webhook.*) is refused before anything reaches the session."""
    session: Any = None  # never touched: the type is checked first
    with pytest.raises(TypeError, match="declared EventType"):
        record_event(session, "payment.captured", {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="member"):
        record_event(session, CUSTOM_WEBHOOK, {})


class _Session:
    """Collects what record_event adds."""

    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, row: Any) -> None:
        self.added.append(row)


def test_record_event_stores_a_payload_model_as_its_json_and_refuses_another_model() -> None:
    """A payload built as the type's model is stored as its JSON dump; a model of another type is refused."""
    session: Any = _Session()
    captured = PaymentDeltaPayload(
        payment_id="pay_1",
        order_id="ord_1",
        provider="stripe",
        provider_ref="pi_1",
        currency="USD",
        amount=2000,
        amount_authorized=2000,
        amount_captured=2000,
        amount_refunded=0,
        status="captured",
        delta=2000,
    )
    row = record_event(session, PAYMENT_CAPTURED, captured, order_id="ord_1")
    assert session.added == [row] and row.payload == captured.model_dump(mode="json")
    assert row.type == "payment.captured" and row.payload["delta"] == 2000
    sent = NotificationPayload(
        notification_id="ntf_1",
        order_id="ord_1",
        kind="order_confirmation",
        status="sent",
        provider="smtp",
        provider_message_id=None,
        attempts=1,
    )
    with pytest.raises(TypeError, match="carries PaymentDeltaPayload, not NotificationPayload"):
        record_event(session, PAYMENT_CAPTURED, sent)  # type: ignore[arg-type]
    assert len(session.added) == 1
