"""EventBus.matching() is cached per event type: the cache follows subscribe and unsubscribe."""

from __future__ import annotations

from storebridge.events.bus import Event, EventBus


async def _ignore(event: Event) -> None:
    return None


def test_matching_follows_subscribe_and_unsubscribe() -> None:
    bus = EventBus()
    bus.subscribe("payments", "payment.*", _ignore)
    assert [s.name for s in bus.matching("payment.captured")] == ["payments"]
    bus.subscribe("everything", "*", _ignore)
    assert [s.name for s in bus.matching("payment.captured")] == ["payments", "everything"]
    assert [s.name for s in bus.matching("order.placed")] == ["everything"]
    bus.unsubscribe("payments")
    assert [s.name for s in bus.matching("payment.captured")] == ["everything"]


def test_a_caller_changing_the_list_it_got_does_not_change_the_cache() -> None:
    bus = EventBus()
    bus.subscribe("payments", "payment.*", _ignore)
    bus.matching("payment.captured").clear()
    assert [s.name for s in bus.matching("payment.captured")] == ["payments"]
