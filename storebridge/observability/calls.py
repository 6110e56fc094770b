"""Outbound provider calls, remembered in memory for the console and /metrics.

Every HTTP attempt a provider adapter makes is recorded (provider, method, status, seconds,
error). The log keeps a rolling window of recent calls, bounded per provider, so "calls and
failures in the last hour" costs no database query, and counts retries since start-up.
Listeners (the hub's Prometheus metrics) see every record as it is made, so totals and latency
histograms since start-up do not depend on the bounded window.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CallLog", "CallRecord", "CallSummary", "CallListener", "status_class"]


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
        return self.status is None or self.status >= 400


@dataclass(frozen=True, slots=True)
class CallSummary:
    provider: str
    calls: int
    failures: int
    last_error: str | None
    last_error_at: float | None


CallListener = Callable[[CallRecord], None]


@dataclass
class CallLog:
    """Per-provider ring buffers of recent calls (at most `keep` each), and retry counts."""

    keep: int = 20_000
    _recent: dict[str, deque[CallRecord]] = field(default_factory=dict)
    _last_error: dict[str, CallRecord] = field(default_factory=dict)
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
        for listener in self._listeners:
            listener(rec)
        return rec

    def recent(self, provider: str, window_s: float = 3600.0) -> list[CallRecord]:
        since = time.time() - window_s
        return [r for r in self._recent.get(provider, ()) if r.at >= since]

    def summary(self, provider: str, window_s: float = 3600.0) -> CallSummary:
        recent = self.recent(provider, window_s)
        last = self._last_error.get(provider)
        error = None
        if last is not None:
            error = last.error or f"HTTP {last.status}"
        return CallSummary(
            provider=provider,
            calls=len(recent),
            failures=sum(1 for r in recent if r.failed),
            last_error=error,
            last_error_at=last.at if last is not None else None,
        )

    def providers(self) -> list[str]:
        return sorted(self._recent)
