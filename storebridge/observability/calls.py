"""Outbound provider calls, remembered in memory for the console and /metrics.

Every HTTP attempt a provider adapter makes is recorded (provider, method, status, seconds,
error). The log keeps totals since start-up and a rolling window of recent calls, bounded
per provider, so "calls and failures in the last hour" costs no database query.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["CallLog", "CallRecord", "CallSummary"]


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


@dataclass
class CallLog:
    """Per-provider ring buffers of recent calls (at most `keep` each)."""

    keep: int = 20_000
    _recent: dict[str, deque[CallRecord]] = field(default_factory=dict)
    _last_error: dict[str, CallRecord] = field(default_factory=dict)

    def record(
        self, provider: str, method: str, status: int | None, seconds: float, error: str | None = None
    ) -> CallRecord:
        rec = CallRecord(time.time(), provider, method.upper(), status, seconds, error)
        self._recent.setdefault(provider, deque(maxlen=self.keep)).append(rec)
        if rec.failed:
            self._last_error[provider] = rec
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
