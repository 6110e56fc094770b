"""In-process counters for webhooks: received and rejected (the route), processed and failed (the worker).

Counted in memory rather than read from the inbox at scrape time: a GROUP BY over webhook_events by
(provider, event_type, status) has no index to use and would scan every retained row (30 days by
default) on each scrape. Counters cost nothing, and Prometheus sums them across processes (an API
process counts what it received; a worker process what it processed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["WebhookStats"]


@dataclass
class WebhookStats:
    received_total: Counter[str] = field(default_factory=Counter)
    duplicates_total: Counter[str] = field(default_factory=Counter)
    rejected_total: Counter[tuple[str, str]] = field(default_factory=Counter)
    # By (provider, event type); counted once the transaction that records the outcome has committed.
    processed_total: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed_attempts_total: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_total: Counter[tuple[str, str]] = field(default_factory=Counter)

    def received(self, provider: str, *, duplicate: bool) -> None:
        self.received_total[provider] += 1
        if duplicate:
            self.duplicates_total[provider] += 1

    def rejected(self, provider: str, reason: str) -> None:
        self.rejected_total[(provider, reason)] += 1

    def rejected_by_provider(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (provider, _), n in self.rejected_total.items():
            out[provider] += n
        return dict(out)

    def processed(self, provider: str, event_type: str) -> None:
        self.processed_total[(provider, event_type)] += 1

    def failed(self, provider: str, event_type: str, *, dead: bool) -> None:
        """One failed processing attempt; `dead` when it was the last one allowed."""
        self.failed_attempts_total[(provider, event_type)] += 1
        if dead:
            self.dead_total[(provider, event_type)] += 1
