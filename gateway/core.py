"""The streaming core: wire messages → columnar batch → threshold rules → InfluxDB lines.

Pure per call apart from the writer it feeds: the async shell (``gateway.runtime``) hands it
lists of raw payloads; it decodes them, checks sequence numbers, evaluates the rules over the
whole concatenated batch and queues readings and alarm events for writing.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alerting.batch import ReadingBatch
from alerting.rules import LEVEL_NAMES, AlarmEvents, PointTable, evaluate, new_state
from edge.wire import WireError, decode
from gateway.config import SiteConfig
from gateway.lineproto import LineBuilder, transition_name
from gateway.writer import BatchingWriter

log = logging.getLogger(__name__)


@dataclass
class CoreStats:
    """Counters of the core, exported as self-metrics."""

    messages: int = 0
    readings: int = 0
    malformed_messages: int = 0
    unknown_point_readings: int = 0
    duplicate_messages: int = 0
    sequence_gaps: int = 0
    missing_messages: int = 0
    alarm_events: int = 0
    dead_letters: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """One alarm transition in the form people and notifiers read."""

    enterprise: str
    source: str
    equipment: str
    point: str
    kind: str
    ts_ms: int
    prev_level: str
    level: str
    transition: str
    value: float
    limit: float | None


def point_table(site: SiteConfig) -> PointTable:
    """Compile the site's points into the rule table, in config order."""
    pts = site.enterprise.points()
    return PointTable.build(
        list(pts),
        [(p.lolo, p.lo, p.hi, p.hihi) for _, _, p in pts.values()],
        [p.effective_deadband for _, _, p in pts.values()],
    )


class Core:
    """Decodes, evaluates and queues for writing; keeps per-point alarm levels between calls."""

    def __init__(self, site: SiteConfig, writer: BatchingWriter,
                 on_alarms: Callable[[list[AlarmRecord]], None] | None = None) -> None:
        self.site = site
        self.table = point_table(site)
        self.state = new_state(len(self.table))
        self._meta = [(sid, eid, pid, p.kind) for pid, (sid, eid, p)
                      in site.enterprise.points().items()]
        code = site.enterprise.code
        self.lines = LineBuilder([
            {"enterprise": code, "source": sid, "equipment": eid, "point": pid, "kind": kind}
            for sid, eid, pid, kind in self._meta])
        self.writer = writer
        self.on_alarms = on_alarms
        self.stats = CoreStats()
        self._seq: dict[str, tuple[int, int]] = {}

    def dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        """Count a message that cannot be used and keep a sample of it."""
        self.stats.malformed_messages += 1
        self.stats.dead_letters.append(
            {"topic": topic, "reason": reason, "sample": payload[:256].decode(errors="replace")})
        if self.stats.malformed_messages in (1, 10, 100, 1000, 10000):
            log.warning("dead-lettered malformed message on %s (%d so far): %s",
                        topic, self.stats.malformed_messages, reason)

    def _fresh(self, edge: str, boot: int, seq: int) -> bool:
        """Track (boot, seq) per edge; False for a duplicate, counting gaps on the way."""
        last = self._seq.get(edge)
        if last is not None and last[0] == boot:
            if seq <= last[1]:
                self.stats.duplicate_messages += 1
                return False
            if seq > last[1] + 1:
                self.stats.sequence_gaps += 1
                self.stats.missing_messages += seq - last[1] - 1
        elif last is not None and boot < last[0]:
            self.stats.duplicate_messages += 1  # a replay from an older boot already seen
            return False
        self._seq[edge] = (boot, seq)
        return True

    def decode(self, messages: list[tuple[str, bytes]]) -> ReadingBatch:
        """One batch from many (topic, payload) messages; bad ones are dead-lettered."""
        parts: list[ReadingBatch] = []
        for topic, payload in messages:
            self.stats.messages += 1
            try:
                wb = decode(payload)
            except WireError as exc:
                self.dead_letter(topic, payload, str(exc))
                continue
            if not topic.endswith(f"/{wb.edge}/readings"):
                self.dead_letter(topic, payload, f"edge {wb.edge!r} does not match the topic")
                continue
            if not self._fresh(wb.edge, wb.boot, wb.seq):
                continue
            parts.append(ReadingBatch(self.table.index(wb.ids), wb.ts_ms, wb.value, wb.quality))
        batch = ReadingBatch.concat(parts)
        unknown = int(np.count_nonzero(batch.point < 0))
        self.stats.unknown_point_readings += unknown
        self.stats.readings += len(batch) - unknown
        return batch

    async def handle(self, messages: list[tuple[str, bytes]]) -> list[AlarmRecord]:
        """Process messages end to end; returns the alarm transitions they caused."""
        batch = self.decode(messages)
        return await self.process(batch)

    async def process(self, batch: ReadingBatch) -> list[AlarmRecord]:
        """Evaluate a batch and queue its readings and alarm events for writing."""
        if len(batch) == 0:
            return []
        events, self.state = evaluate(self.table, self.state, batch)
        await self.writer.put(self.lines.readings(batch), len(batch))
        if len(events) == 0:
            return []
        self.stats.alarm_events += len(events)
        await self.writer.put(self.lines.events(events), len(events))
        records = self.records(events)
        if self.on_alarms is not None:
            self.on_alarms(records)
        return records

    def records(self, events: AlarmEvents) -> list[AlarmRecord]:
        """Alarm transitions with names instead of indexes (few per batch)."""
        out = []
        for p, ts, prev, lvl, val, lim in zip(
            events.point.tolist(), events.ts_ms.tolist(), events.prev_level.tolist(),
            events.level.tolist(), events.value.tolist(), events.limit.tolist(), strict=True,
        ):
            sid, eid, pid, kind = self._meta[p]
            out.append(AlarmRecord(
                self.site.enterprise.code, sid, eid, pid, kind, ts, LEVEL_NAMES[prev],
                LEVEL_NAMES[lvl], transition_name(prev, lvl), val,
                lim if np.isfinite(lim) else None))
        return out
