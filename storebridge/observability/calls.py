"""Outbound provider calls, remembered in memory for the console and /metrics.

Every HTTP attempt a provider adapter makes is recorded (provider, method, status, seconds,
error). The log keeps a rolling window of recent calls, bounded per provider, so "calls and
failures in the last hour" costs no database query, and counts retries since start-up.
Listeners (the hub's Prometheus metrics) see every record as it is made, so totals and latency
histograms since start-up do not depend on the bounded window.

Provider health counts only the provider's failures: no answer (network error, timeout), a 5xx, a
429 or an authentication error (401, 403). Any other 4xx is the provider working and saying no to one
request (a card declined is a 402): it is counted apart, as `refused`, and is not a "last error".
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CallLog", "CallRecord", "CallSummary", "CallListener", "status_class", "PROVIDER_FAILURE_STATUSES"]

# 4xx answers that say the provider (or our access to it) is failing, not the request.
PROVIDER_FAILURE_STATUSES = frozenset({401, 403, 408, 429})


def status_class(status: int | None) -> str:
    """ "2xx" .. "5xx", or "error" when there was no HTTP answer (a bounded label for metrics)."""
    return "error" if status is None else f"{status // 100}xx"


@dataclass(frozen=True, slots=True)
class CallRecord:
    at: float
    provider: str
    method: str
    status: int | None  # None: no HTTP answer (connection error, timeout)
    seconds: float
    error: str | None = None

    @property
    def failed(self) -> bool:
        """A provider failure: no answer, a 5xx, a 429 or an authentication error."""
        return self.status is None or self.status >= 500 or self.status in PROVIDER_FAILURE_STATUSES

    @property
    def refused(self) -> bool:
        """The provider working and refusing this one request (a decline, a validation error, a 404)."""
        return self.status is not None and 400 <= self.status < 500 and not self.failed

    def described(self) -> str:
        return self.error or f"HTTP {self.status}"


@dataclass(frozen=True, slots=True)
class CallSummary:
    provider: str
    calls: int
    failures: int  # provider failures only
    last_error: str | None
    last_error_at: float | None
    refused: int = 0  # requests the provider answered with a business refusal (402 decline, 4xx)
    last_refusal: str | None = None


CallListener = Callable[[CallRecord], None]


@dataclass
class CallLog:
    """Per-provider ring buffers of recent calls (at most `keep` each), and retry counts."""

    keep: int = 20_000
    _recent: dict[str, deque[CallRecord]] = field(default_factory=dict)
    _last_error: dict[str, CallRecord] = field(default_factory=dict)
    _last_refusal: dict[str, CallRecord] = field(default_factory=dict)
    retries: Counter[str] = field(default_factory=Counter)  # attempts after the first, per provider
    _listeners: list[CallListener] = field(default_factory=list)

    def add_listener(self, listener: CallListener) -> None:
        """Call `listener(record)` for every call recorded from now on (it must be quick and not raise)."""
        self._listeners.append(listener)

    def retried(self, provider: str) -> None:
        """Count one attempt after the first (the attempt itself is recorded by `record`)."""
        self.retries[provider] += 1

    def record(
        self, provider: str, method: str, status: int | None, seconds: float, error: str | None = None
    ) -> CallRecord:
        rec = CallRecord(time.time(), provider, method.upper(), status, seconds, error)
        self._recent.setdefault(provider, deque(maxlen=self.keep)).append(rec)
        if rec.failed:
            self._last_error[provider] = rec
        elif rec.refused:
            self._last_refusal[provider] = rec
        for listener in self._listeners:
            listener(rec)
        return rec

    def recent(self, provider: str, window_s: float = 3600.0) -> list[CallRecord]:
        since = time.time() - window_s
        return [r for r in self._recent.get(provider, ()) if r.at >= since]

    def summary(self, provider: str, window_s: float = 3600.0) -> CallSummary:
        recent = self.recent(provider, window_s)
        last = self._last_error.get(provider)
        refusal = self._last_refusal.get(provider)
        return CallSummary(
            provider=provider,
            calls=len(recent),
            failures=sum(1 for r in recent if r.failed),
            last_error=last.described() if last is not None else None,
            last_error_at=last.at if last is not None else None,
            refused=sum(1 for r in recent if r.refused),
            last_refusal=refusal.described() if refusal is not None else None,
        )

    def providers(self) -> list[str]:
        return sorted(self._recent)
