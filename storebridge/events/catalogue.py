"""The event catalogue: every event type the hub records, with a description and its payload's schema.

Each capability declares the types it records, once, in its own `events.py` (an `EventType` per
type and an `EVENT_TYPES` tuple); `record_event` takes only an `EventType`, so a type that is not
declared cannot be recorded. `load_catalogue()` collects the capabilities' tuples (the modules in
EVENT_MODULES, imported when it is called, never at import time of this module) for
`GET /event-types`, docs/events.md and the tests that validate real payloads against the schemas.

A name ending in `.*` declares a family (`webhook.*`: custom providers' events as
`webhook.<provider>.<type>`); `EventType.member(suffix)` gives the concrete type to record.

An `EventType[P]` is generic in its payload model: emitters build a `P` (`record_event` dumps it), so
what is recorded is validated against the very model the published JSON Schema is derived from.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

__all__ = ["EventType", "Catalogue", "EVENT_MODULES", "load_catalogue"]

P = TypeVar("P", bound=BaseModel)

# Modules with an `EVENT_TYPES: tuple[EventType, ...]`, listed in the order the catalogue shows them.
EVENT_MODULES: tuple[str, ...] = (
    "storebridge.orders.events",
    "storebridge.payments.events",
    "storebridge.shipping.events",
    "storebridge.inventory.events",
    "storebridge.notifications.events",
    "storebridge.webhooks.events",
)


@dataclass(frozen=True, slots=True)
class EventType(Generic[P]):
    """One event type: its name (`payment.captured`), what it reports, and the model of its payload
    (the `data` of outbound webhooks, `Event.payload` in process)."""

    name: str
    description: str
    payload: type[P]

    def __str__(self) -> str:
        return self.name

    @property
    def is_family(self) -> bool:
        return self.name.endswith(".*")

    def member(self, suffix: str) -> EventType[P]:
        """The concrete type `<family>.<suffix>` of a family (`webhook.*` -> `webhook.acme.order.paid`)."""
        if not self.is_family or not suffix:
            raise ValueError(f"{self.name!r} is not a family, or the suffix is empty")
        return EventType(f"{self.name[:-1]}{suffix}", self.description, self.payload)

    def matches(self, event_type: str) -> bool:
        return fnmatch.fnmatchcase(event_type, self.name) if self.is_family else event_type == self.name

    def schema(self) -> dict[str, Any]:
        """The payload's JSON Schema (draft 2020-12, as pydantic writes it)."""
        return self.payload.model_json_schema()


class Catalogue:
    """Event types by name; a name is declared once."""

    def __init__(self, types: Iterable[EventType[Any]] = ()) -> None:
        self._types: dict[str, EventType[Any]] = {}
        for t in types:
            self.add(t)

    def add(self, event_type: EventType[Any]) -> None:
        if event_type.name in self._types:
            raise ValueError(f"event type {event_type.name!r} is declared twice")
        self._types[event_type.name] = event_type

    def __iter__(self) -> Iterator[EventType[Any]]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)

    def find(self, event_type: str) -> EventType[Any] | None:
        """The declared type of a recorded one: its exact name, else the family it belongs to."""
        found = self._types.get(event_type)
        if found is not None:
            return found
        return next((t for t in self._types.values() if t.is_family and t.matches(event_type)), None)


def load_catalogue(modules: Iterable[str] = EVENT_MODULES) -> Catalogue:
    """Collect the `EVENT_TYPES` of each module into one catalogue."""
    catalogue = Catalogue()
    for name in modules:
        for event_type in importlib.import_module(name).EVENT_TYPES:
            catalogue.add(event_type)
    return catalogue
