"""The home page chart, drawn on the server as SVG: per provider, webhooks per hour, failed ones in red."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from storebridge.admin.queries import HOUR, ProviderSeries

__all__ = ["Bar", "Panel", "panels", "WIDTH", "HEIGHT"]

WIDTH = 720
HEIGHT = 90  # plot height of one provider's panel
BAR_GAP = 2


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    y_received: float
    h_received: float
    y_failed: float
    h_failed: float
    title: str  # the tooltip: hour and counts


@dataclass(frozen=True, slots=True)
class Panel:
    provider: str
    received: int
    failed: int
    peak: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (x, "HH:00") every 6 hours


def panels(start: float, series: list[ProviderSeries]) -> list[Panel]:
    """Geometry for each provider's panel; every panel shares one scale so heights compare."""
    peak = max([max(s.received, default=0) for s in series] + [1])
    out: list[Panel] = []
    for s in series:
        hours = len(s.received)
        slot = WIDTH / max(hours, 1)
        bars = []
        for i, (got, bad) in enumerate(zip(s.received, s.failed, strict=True)):
            h_got = HEIGHT * got / peak
            h_bad = HEIGHT * bad / peak
            label = datetime.fromtimestamp(start + i * HOUR, UTC).strftime("%H:00")
            bars.append(
                Bar(
                    x=round(i * slot + BAR_GAP / 2, 2),
                    width=round(slot - BAR_GAP, 2),
                    y_received=round(HEIGHT - h_got, 2),
                    h_received=round(h_got, 2),
                    y_failed=round(HEIGHT - h_bad, 2),
                    h_failed=round(h_bad, 2),
                    title=f"{s.provider} {label} UTC: {got} received, {bad} failed",
                )
            )
        ticks = [
            (round(i * slot, 2), datetime.fromtimestamp(start + i * HOUR, UTC).strftime("%H:00"))
            for i in range(0, hours, 6)
        ]
        out.append(Panel(s.provider, s.total_received, s.total_failed, max(s.received, default=0), bars, ticks))
    return out
