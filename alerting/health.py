"""Alarm-system health (ISA-18.2 / EEMUA 191, domain.md §6.3): annunciation rate per console,
floods (more than 10 annunciations in 10 minutes; over when fewer than 5), time in flood,
chattering and stale (active ≥ 24 h) alarms."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

FLOOD_WINDOW_MS = 600_000
FLOOD_START = 10       # more than this many in the window starts a flood
FLOOD_END = 5          # fewer than this many ends it
STALE_ALARM_MS = 24 * 3600 * 1000


@dataclass
class ConsoleHealth:
    """Counters of one console."""

    annunciations: deque[int] = field(default_factory=deque)
    in_flood: bool = False
    flood_since: int = -1
    floods: int = 0
    flood_ms: int = 0
    total_annunciations: int = 0


@dataclass(frozen=True)
class FloodChange:
    """A console entering or leaving a flood."""

    console: str
    ts: int
    starts: bool
    count: int


class AlarmHealth:
    """Sliding-window alarm rates and flood state per console."""

    def __init__(self, consoles: list[str]) -> None:
        self.consoles = {c: ConsoleHealth() for c in consoles}

    def _expire(self, h: ConsoleHealth, now: int) -> None:
        while h.annunciations and h.annunciations[0] <= now - FLOOD_WINDOW_MS:
            h.annunciations.popleft()

    def annunciated(self, console: str, ts: int) -> FloodChange | None:
        """Count one annunciation; returns a flood start when it makes one."""
        h = self.consoles[console]
        self._expire(h, ts)
        h.annunciations.append(ts)
        h.total_annunciations += 1
        if not h.in_flood and len(h.annunciations) > FLOOD_START:
            h.in_flood, h.flood_since = True, ts
            h.floods += 1
            return FloodChange(console, ts, True, len(h.annunciations))
        return None

    def tick(self, now: int) -> list[FloodChange]:
        """Floods that ended as the window slid on."""
        out = []
        for name, h in self.consoles.items():
            self._expire(h, now)
            if h.in_flood and len(h.annunciations) < FLOOD_END:
                h.in_flood = False
                h.flood_ms += now - h.flood_since
                out.append(FloodChange(name, now, False, len(h.annunciations)))
        return out

    def rates(self, now: int) -> dict[str, dict[str, int]]:
        """Per console: annunciations in the last 10 minutes, flood flag and totals."""
        out = {}
        for name, h in self.consoles.items():
            self._expire(h, now)
            flood_ms = h.flood_ms + (now - h.flood_since if h.in_flood else 0)
            out[name] = {"annunciated_10min": len(h.annunciations), "in_flood": int(h.in_flood),
                         "floods": h.floods, "flood_ms": flood_ms,
                         "annunciated_total": h.total_annunciations}
        return out
