"""Event types for tests that record events by hand: the declared one, or a test's own."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from storebridge.events.catalogue import EventType, load_catalogue

__all__ = ["declared"]


class AnyPayload(BaseModel):
    model_config = ConfigDict(extra="allow")  # a test's own event carries whatever the test gives it


def declared(name: str) -> EventType:
    """The catalogue's type of that name, or (for a name the hub never records, like `probe.x`) a test's own."""
    found = load_catalogue().find(name)
    return found if found is not None and not found.is_family else EventType(name, "A test's own event.", AnyPayload)
