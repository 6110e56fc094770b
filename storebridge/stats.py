"""In-process counters for webhooks received and rejected, per provider (exported by /metrics later)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["WebhookStats"]


@dataclass
class WebhookStats:
    received_total: Counter[str] = field(default_factory=Counter)
    duplicates_total: Counter[str] = field(default_factory=Counter)
    rejected_total: Counter[tuple[str, str]] = field(default_factory=Counter)

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
