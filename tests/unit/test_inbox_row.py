"""The inbox's one check on an identified event: what a provider parser hands it must fit the row."""

from __future__ import annotations

from typing import Any

import pytest

from storebridge.errors import WebhookRejected
from storebridge.webhooks.inbox import INSERT_COLUMNS, inbox_row, new_row_values
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.sources import Identified


def _row(**fields: Any) -> Any:
    ident = Identified(**{"event_id": "evt_1", "event_type": "thing.happened", **fields})
    return inbox_row("test", ident, headers={}, body=b"{}", request_id="r1")


def test_a_well_formed_event_becomes_its_row() -> None:
    """Strings within their columns and a unix time: stored as given (an integer time as a float)."""
    row = _row(created_at=1_700_000_000, aggregate_key="pi_1")
    assert (row.event_id, row.event_type, row.aggregate_key, row.provider_created_at) == (
        "evt_1",
        "thing.happened",
        "pi_1",
        1_700_000_000.0,
    )
    assert type(row.provider_created_at) is float
    assert _row(event_id="é" * 255, aggregate_key=None).aggregate_key is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event_id": {"id": 1}}, "event id must be a non-empty string of at most 255 characters"),
        ({"event_id": "e" * 256}, "event id must be a non-empty string of at most 255 characters"),
        ({"event_id": ""}, "event id must be a non-empty string"),
        ({"event_id": "evt\n1"}, "event id must not contain control characters"),
        ({"event_type": 7}, "event type must be a non-empty string"),
        ({"event_type": "a\x00b"}, "event type must not contain control characters"),
        ({"event_type": "a\x85b"}, "event type must not contain control characters"),
        ({"aggregate_key": {"id": "pi_1"}}, "aggregate key must be a non-empty string"),
        ({"aggregate_key": 12345}, "aggregate key must be a non-empty string"),
        ({"aggregate_key": "k" * 256}, "aggregate key must be a non-empty string of at most 255 characters"),
        ({"aggregate_key": "pi_\ud800"}, "aggregate key must not contain control characters or unpaired surrogates"),
        ({"created_at": float("nan")}, "created_at must be a unix time"),
        ({"created_at": float("inf")}, "created_at must be a unix time"),
        ({"created_at": -1.0}, "created_at must be a unix time"),
        ({"created_at": 1e300}, "created_at must be a unix time"),
        ({"created_at": True}, "created_at must be a unix time"),
        ({"created_at": "1700000000"}, "created_at must be a unix time"),
    ],
)
def test_a_field_that_cannot_be_stored_is_a_400_naming_it(fields: dict[str, Any], message: str) -> None:
    """Wrong type, too long, control characters, a time out of range: malformed_event, 400, the field named."""
    with pytest.raises(WebhookRejected) as caught:
        _row(**fields)
    assert (caught.value.status, caught.value.code) == (400, "malformed_event")
    assert message in str(caught.value)


def test_every_inbox_row_field_is_a_column_a_new_row_sets() -> None:
    """The insert's columns come from the table: each InboxRow field names one, plus the arrival columns."""
    row = _row()
    values = new_row_values(row, 1.0)
    assert set(values) == set(INSERT_COLUMNS) <= set(WebhookEvent.__table__.columns.keys())
    assert (values["status"], values["attempts"], values["received_at"], values["next_attempt_at"]) == (
        "received",
        0,
        1.0,
        1.0,
    )
