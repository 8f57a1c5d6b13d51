"""The streaming core: wire messages → columnar batch → alerting engine → InfluxDB lines.

The async shell (``gateway.stream.runtime``) hands it lists of raw payloads; it decodes them, checks
sequence numbers, runs the alerting engine over the whole concatenated batch and queues
readings and alarm events for writing and publishing. Alarm events are never dropped: the
writer and the publisher apply backpressure instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent, Engine
from alerting.table import RuleTable
from edge.clock import WALL, Clock
from edge.signing import SignatureError, Verifier
from edge.stats import decode_stats
from edge.supervise import Loops, to_completion
from edge.wire import WireError, decode
from gateway.influx.schema import ALARM_HEALTH, LineBuilder, line, lines, stats_lines
from gateway.influx.writer import BatchingWriter
from gateway.settings import IngestLimits
from gateway.site import SiteConfig
from gateway.stream.boundary import Boundary
from gateway.stream.compiled import CompiledSite, as_compiled
from gateway.stream.sequence import SequenceTracker
from gateway.stream.tail import Tail

log = logging.getLogger(__name__)

AlarmSink = Callable[[list[AlarmEvent]], Awaitable[None]]


@dataclass
class CoreStats:
    """Counters of the core, exported as self-metrics."""

    messages: int = 0
    readings: int = 0
    malformed_messages: int = 0
    unknown_point_readings: int = 0
    duplicate_messages: int = 0
    edge_stats_messages: int = 0
    alarm_events: int = 0
    accepted_messages: int = 0
    sink_failures: int = 0
    notifications_failed: int = 0   # given up for good (set by the escalation service)
    dead_letters: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))


class PointIndex:
    """Point id lists → table positions, remembering the lists that come again.

    An edge sends the same points in the same order every poll cycle. A list seen before
    costs one tuple hash and compare, ~30 ns an id, against ~130 ns for a dict lookup per id
    (``RuleTable.index``), which under load, with the database evicting the CPU caches,
    became ~5 times that and a sixth of the core's time. The remembered tuples hold the
    table's own id strings, so a list costs 8 bytes an id; the oldest are forgotten first.
    """

    def __init__(self, table: RuleTable, max_lists: int = 4096, min_length: int = 16) -> None:
        """Remember up to ``max_lists`` lists of at least ``min_length`` ids (shorter ones,
        such as an MQTT sensor's single reading, are looked up directly)."""
        self._table = table
        self._max = max_lists
        self._min = min_length
        self._known: dict[tuple[str, ...], npt.NDArray[np.int32]] = {}

    def __len__(self) -> int:
        """Lists remembered."""
        return len(self._known)

    def __call__(self, ids: list[str]) -> npt.NDArray[np.int32]:
        """Positions of ``ids``, -1 for unknown ids."""
        if len(ids) < self._min:
            return self._table.index(ids)
        key = tuple(ids)
        found = self._known.get(key)
        if found is not None:
            return found
        found = self._table.index(ids)
        if len(found) and found.min() < 0:
            return found        # holds unknown ids: not remembered (they cost memory)
        found.flags.writeable = False       # shared by every batch of this list
        names = self._table.names       # the table's own strings: 8 bytes an id
        self._known[tuple([names[i] for i in found.tolist()])] = found
        if len(self._known) > self._max:
            del self._known[next(iter(self._known))]
        return found


Check = Callable[[AlarmEvent], None]      # sees the alarm as it stands; raises to refuse
Record = Callable[[AlarmEvent], None]     # writes an action's records (in a worker thread)


class Core:
    """Decodes, evaluates and queues for writing; the engine keeps the alarm state.

    The core is the engine's only owner: everything that reads or changes alarm state (the
    consumer, the alarm clock, operator actions, the API's reads) runs on the event loop
    through the methods below, never from a worker thread and never on ``engine`` directly.
    """

    def __init__(self, site: SiteConfig | CompiledSite, writer: BatchingWriter,
                 alarm_sinks: list[AlarmSink] | None = None, clock: Clock = WALL,
                 loops: Loops | None = None, limits: IngestLimits | None = None,
                 signatures: Verifier | None = None) -> None:
        # No reference to the config model is kept: at 100 000 points it is most of the
        # memory, and the core needs only the compiled rules (gateway.stream.compiled).
        compiled = as_compiled(site)
        self.enterprise = compiled.enterprise
        self.name = compiled.name
        self.source_levels = dict(compiled.source_levels)
        self.labels = compiled.labels           # names and units, for people (the console)
        self.shelving = compiled.shelving
        self.ack_within_s = compiled.escalation.ack_within_s     # for the daily report
        self.engine = Engine(compiled.table)
        self.table = self.engine.table
        tb = self.table
        self.lines = LineBuilder([
            {"enterprise": self.enterprise, "source": tb.sources[i],
             "equipment": tb.equipments[i], "point": str(pid), "kind": tb.kinds[i]}
            for i, pid in enumerate(tb.ids.tolist())])
        self.writer = writer
        self.alarm_sinks = list(alarm_sinks or [])
        self.clock = clock
        self.loops = loops or Loops(clock)      # the process's supervised loops (/health)
        self.stats = CoreStats()
        self.sequences = SequenceTracker()
        # Held by whatever changes alarm state (a step, a tick, an operator action) from its
        # change until its events are queued for writing: a state snapshot taken under it
        # matches what was written exactly (``gateway.stream.state``).
        self.step_lock = asyncio.Lock()
        self.version = 0            # bumped by every such change: nothing new, nothing saved
        self.point_index = PointIndex(tb)
        self.tail = Tail()          # the watched points' last readings (console trends)
        self.boundary = Boundary(limits or IngestLimits(), len(tb), compiled.edge_points)
        self.signatures = signatures or Verifier({})     # who must sign (edge.signing)
        self._edge_stats: list[bytes] = []

    def dead_letter(self, topic: str, payload: bytes, reason: str,
                    kind: str = "malformed") -> None:
        """Count a message that cannot be used (by ``kind``, one of ``boundary.REASONS``)
        and keep a sample of it."""
        self.stats.malformed_messages += 1
        self.boundary.refused[kind] += 1
        self.stats.dead_letters.append(
            {"topic": topic, "kind": kind, "reason": reason,
             "sample": payload[:256].decode(errors="replace"), "ts_ms": self.clock.now_ms()})
        if self.stats.malformed_messages in (1, 10, 100, 1000, 10000):
            log.warning("dead-lettered a message on %s (%d so far): %s: %s",
                        topic[:200], self.stats.malformed_messages, kind, reason)

    def decode(self, messages: list[tuple[str, bytes]]) -> ReadingBatch:
        """One batch from many (topic, payload) messages; what the boundary refuses is
        counted and dead-lettered (``gateway.stream.boundary``)."""
        return ReadingBatch.concat([part for _, _, part in self.decode_parts(messages)])

    def decode_parts(self, messages: list[tuple[str, bytes]],
                     ) -> list[tuple[str, bytes, ReadingBatch]]:
        """Each usable message with its readings; one that fails, however, is dead-lettered
        alone."""
        out: list[tuple[str, bytes, ReadingBatch]] = []
        now_ms = self.clock.now_ms()
        for topic, payload in messages:
            self.stats.messages += 1
            try:
                part = self._decode_one(topic, payload, now_ms)
            except Exception as exc:      # a bug, not bad input: still only this message
                log.exception("core: decoding a message on %s failed", topic[:200])
                self.dead_letter(topic, payload, f"{type(exc).__name__}: {exc}", "core_error")
                continue
            if part is not None:
                self.stats.accepted_messages += 1
                unknown = int(np.count_nonzero(part.point < 0))
                self.stats.unknown_point_readings += unknown
                self.stats.readings += len(part) - unknown
                out.append((topic, payload, part))
        return out

    def _decode_one(self, topic: str, payload: bytes, now_ms: int) -> ReadingBatch | None:
        lim, edges = self.boundary.limits, self.boundary
        if len(payload) > lim.max_message_bytes:
            self.dead_letter(topic, payload, f"{len(payload)} bytes, more than the limit of "
                             f"{lim.max_message_bytes}", "too_large")
            return None
        levels = topic.split("/")
        topic_edge = levels[-2] if len(levels) >= 2 else ""
        if not edges.edge_known(topic_edge):
            self.dead_letter(topic, payload, f"edge {topic_edge!r} is not in the site",
                             "unknown_edge")
            return None
        try:        # before anything reads it: a forged message changes nothing
            payload = self.signatures.body(topic_edge, topic, payload)
        except SignatureError as exc:
            self.dead_letter(topic, payload, f"signature: {exc}", "bad_signature")
            return None
        if topic.endswith("/stats"):
            self._decode_edge_stats(topic, payload)
            return None
        try:
            wb = decode(payload)
        except WireError as exc:
            self.dead_letter(topic, payload, str(exc))
            return None
        if wb.edge != topic_edge or not topic.endswith("/readings"):
            self.dead_letter(topic, payload, f"edge {wb.edge!r} does not match the topic",
                             "edge_mismatch")
            return None
        if len(wb.ids) > lim.max_ids_per_message:
            self.dead_letter(topic, payload, f"{len(wb.ids)} readings, more than the limit "
                             f"of {lim.max_ids_per_message}", "too_many_ids")
            return None
        # boot is the edge agent's start in real time (whatever clock it stamps readings on)
        if wb.boot > (time.time() + lim.ts_future_s) * 1000:
            self.dead_letter(topic, payload, f"boot {wb.boot} is in the future",
                             "implausible_boot")
            return None
        jump = self.sequences.jump(wb.edge, wb.boot, wb.seq)
        if jump > lim.max_seq_jump:
            self.dead_letter(topic, payload, f"seq {wb.seq} jumps {jump} past the edge's "
                             f"highest (limit {lim.max_seq_jump})", "seq_jump")
            return None
        if not self.sequences.fresh(wb.edge, wb.boot, wb.seq):
            self.stats.duplicate_messages += 1
            return None
        part = ReadingBatch(self.point_index(wb.ids), wb.ts_ms, wb.value, wb.quality)
        keep = edges.readings(wb.edge, part.point, part.ts_ms, now_ms)
        if wb.detail is not None:       # written with the step's edge stats (same writer)
            d = wb.detail if keep is None else wb.detail[keep]
            p, t = (part.point, part.ts_ms) if keep is None else \
                (part.point[keep], part.ts_ms[keep])
            self._edge_stats.append(self.lines.details(p, t, d))
        return part if keep is None else part.take(np.flatnonzero(keep))

    def _decode_edge_stats(self, topic: str, payload: bytes) -> None:
        try:
            st = decode_stats(payload)
        except WireError as exc:
            self.dead_letter(topic, payload, f"edge stats: {exc}")
            return
        if not topic.endswith(f"/{st.edge}/stats"):
            self.dead_letter(topic, payload, f"edge {st.edge!r} does not match the topic",
                             "edge_mismatch")
            return
        if not self.boundary.edge_known(st.edge):
            self.dead_letter(topic, payload, f"edge {st.edge!r} is not in the site",
                             "unknown_edge")
            return
        now, lim = self.clock.now_ms(), self.boundary.limits
        if not now - lim.ts_past_s * 1000 <= st.ts_ms <= now + lim.ts_future_s * 1000:
            self.dead_letter(topic, payload, f"ts {st.ts_ms} is outside the accepted window "
                             f"({lim.ts_past_s:g} s back, {lim.ts_future_s:g} s ahead)",
                             "time_out_of_window")
            return
        self.stats.edge_stats_messages += 1
        self._edge_stats.append(stats_lines(self.enterprise, st))

    async def handle(self, messages: list[tuple[str, bytes]]) -> list[AlarmEvent]:
        """Process messages end to end; returns the alarm events they caused. Should the
        evaluation of the whole step raise (a bug the boundary let through), each message
        is evaluated again alone, so that only the guilty one is dead-lettered."""
        parts = self.decode_parts(messages)
        try:
            events = await self.process(ReadingBatch.concat([p for _, _, p in parts]))
        except Exception:
            if len(parts) <= 1:
                for topic, payload, _ in parts:
                    log.exception("core: evaluating a message on %s failed", topic[:200])
                    self.dead_letter(topic, payload, "evaluation failed (see log)",
                                     "core_error")
                events = []
            else:
                log.exception("core: a step of %d messages failed: evaluating them one by "
                              "one", len(parts))
                events = []
                for topic, payload, part in parts:
                    try:
                        events += await self.process(part)
                    except Exception as exc:
                        self.dead_letter(topic, payload, f"evaluation failed: "
                                         f"{type(exc).__name__}: {exc}", "core_error")
        if self._edge_stats:
            lines, self._edge_stats = self._edge_stats, []
            body = b"".join(lines)
            await self.writer.put(body, body.count(b"\n"))
        return events

    async def process(self, batch: ReadingBatch) -> list[AlarmEvent]:
        """Evaluate a batch and queue its readings and alarm events (the caller holds
        ``step_lock``)."""
        if len(batch) == 0:
            return []
        self.version += 1
        events = self.engine.process(batch)
        self.tail.feed(batch)
        # Alarms leave first: a slow database must not delay the regulator's alarm feed.
        await self.emit(events)
        await self.writer.put(self.lines.readings(batch), len(batch))
        return events

    async def tick(self, now_ms: int | None = None) -> list[AlarmEvent]:
        """Clock-driven alarm work (stale points, shelving expiry, re-alarm, floods)."""
        async with self.step_lock:
            events = self.engine.tick(self.clock.now_ms() if now_ms is None else now_ms)
            if events:
                self.version += 1
            await self.emit(events)
        return events

    # -- operator actions: each runs the transition and emits its event, stamped on the
    # core's clock; InvalidTransitionError (unknown alarm, or not allowed in its state, or
    # refused by ``check``) changes nothing. With ``record`` (its audit record and history
    # row, written in a worker thread) the action happens with its record or not at all.
    async def acknowledge(self, alarm_id: str, user: str, comment: str | None = None, *,
                          record: Record | None = None) -> AlarmEvent:
        """Acknowledge an unacknowledged alarm."""
        return await self._act(alarm_id, lambda now: self.engine.acknowledge(
            alarm_id, user, now, comment), record=record)

    async def shelve(self, alarm_id: str, user: str, reason: str, minutes: float, *,
                     check: Check | None = None, record: Record | None = None) -> AlarmEvent:
        """Shelve for ``minutes``; still evaluated and recorded. ``check`` sees the alarm as
        it stands (under the step lock) and may refuse (the shelving policy)."""
        return await self._act(alarm_id, lambda now: self.engine.shelve(
            alarm_id, user, reason, now + int(minutes * 60_000), now), check, record)

    async def unshelve(self, alarm_id: str, user: str, *,
                       record: Record | None = None) -> AlarmEvent:
        """End shelving early."""
        return await self._act(alarm_id, lambda now: self.engine.unshelve(alarm_id, user, now),
                               record=record)

    async def remove_from_service(self, alarm_id: str, user: str, reason: str, *,
                                  record: Record | None = None) -> AlarmEvent:
        """Take an alarm out of service (person and reason required)."""
        return await self._act(alarm_id, lambda now: self.engine.remove_from_service(
            alarm_id, user, reason, now), record=record)

    async def return_to_service(self, alarm_id: str, user: str, *,
                                record: Record | None = None) -> AlarmEvent:
        """Put an alarm back in service."""
        return await self._act(alarm_id, lambda now: self.engine.return_to_service(
            alarm_id, user, now), record=record)

    def check_alarm(self, alarm_id: str) -> int:
        """The current time if the alarm exists (a comment's stamp); InvalidTransitionError
        otherwise."""
        self.engine.slot(alarm_id)
        return self.clock.now_ms()

    async def _act(self, alarm_id: str, change: Callable[[int], AlarmEvent],
                   check: Check | None = None, record: Record | None = None) -> AlarmEvent:
        async with self.step_lock:
            slot = self.engine.slot(alarm_id)
            if check is not None:
                check(self.engine.describe(slot))
            kept = self.engine.lifecycle.keep(slot)
            event = change(self.clock.now_ms())
            if record is not None:
                # Under the step lock, so nothing else touches the slot meanwhile and undoing
                # is exact: ingest waits for one small transaction per operator action.
                try:
                    await to_completion(asyncio.to_thread(record, event))
                except BaseException:
                    self.engine.lifecycle.put_back(slot, kept)
                    raise
            self.version += 1
            await self.emit([event])
        return event

    # -- reads (on the loop) -----------------------------------------------------------------
    def standing(self) -> list[AlarmEvent]:
        """Alarms not in NORMAL, in display order."""
        return self.engine.standing()

    def recent(self, point: str) -> list[tuple[int, float]]:
        """A point's last valid samples that the windowed rules keep (oldest first)."""
        return self.engine.recent(point)

    def trend(self, point: str) -> list[tuple[int, float]]:
        """A point's recent good samples for people to look at: those of the windowed rules
        or, when the tail has more (it keeps them once the point is watched), the tail's."""
        i = self.table.position.get(point, -1)
        if i < 0:
            return []
        tail = self.tail.samples(i, time.monotonic())
        ring = self.engine.recent(point)
        return tail if len(tail) > len(ring) else ring

    async def emit(self, events: list[AlarmEvent]) -> None:
        """Write alarm events and hand them to every alarm sink (MQTT, display, ...)."""
        if not events:
            return
        self.stats.alarm_events += len(events)
        # The record first: a failing sink must not cost the events their place in InfluxDB.
        await self.writer.put(self.lines.events(self.enterprise, events), len(events),
                              alarm_events=True)
        for sink in self.alarm_sinks:
            # Isolated: one failing sink (a broker away, a database blip) neither stops the
            # others nor the step; it is said once per failure streak and counted. A sink
            # that must not lose events keeps its own retry (the escalation's pending queue).
            name = f"sink-{getattr(sink, '__name__', None) or type(sink).__name__}"
            h = self.loops.by_name.get(name) or self.loops.add(name)
            try:
                await sink(events)
            except Exception as exc:
                self.stats.sink_failures += 1
                self.loops.failed(h, exc, 0)
            else:
                if h.streak or h.state == "starting":
                    self.loops.ok(h)

    def health_lines(self, now_ms: int) -> bytes:
        """``alarm_health`` per console: rates, flood, lifecycle counts (line protocol)."""
        rows = []
        for console, r in self.engine.health.rates(now_ms).items():
            counts = self.engine.counts(now_ms, console)
            fields = {**{k: int(v) for k, v in r.items()},
                      **{f"alarms_{k}": int(v) for k, v in counts.items()}}
            rows.append(line(ALARM_HEALTH, {"enterprise": self.enterprise, "console": console},
                             fields, now_ms))
        return lines(rows)
