"""Escalation as a running service: the escalation clock, the outbox delivery and the register
feed over the database, which may be away (at start or later) without costing anything.

The database is opened on the first step and again after it is lost; until it answers,
alarm events wait in memory (one queue per consumer, so that a retry records nothing twice)
and the escalation clock's supervised loop says once what is wrong and retries with
backoff. Readings and alarms flow meanwhile: only escalation waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from alerting.engine import AlarmEvent
from edge.clock import Clock
from gateway.alarms.escalation import Escalator
from gateway.alarms.notifiers import build_notifiers, webhook_secret_problem
from gateway.alarms.outbox import Delivery, failed_count
from gateway.alarms.register_feed import RegisterFeed
from gateway.settings import Settings
from gateway.store import audit
from gateway.store.models import Database
from gateway.store.register import Register
from gateway.store.threshold_audit import record_changes
from gateway.stream.compiled import CompiledSite

log = logging.getLogger(__name__)

Recent = Callable[[str], list[tuple[int, float]]]

# Alarm events kept in memory per consumer while the database is away: an hour of a flood
# of ~30 events a second (an event list is a few hundred bytes an event).
MAX_PENDING_EVENTS = 100_000


@dataclass
class _Open:
    db: Database
    escalator: Escalator
    feed: RegisterFeed
    delivery: Delivery


class EscalationService:
    """The escalation of one enterprise's alarms; ``sink`` is its alarm sink."""

    def __init__(self, site: CompiledSite, settings: Settings, clock: Clock,
                 recent: Recent) -> None:
        self.site = site
        self.settings = settings
        self.clock = clock
        self.recent = recent
        problem = webhook_secret_problem(site.contacts, settings.notify)
        if problem is not None:
            raise ValueError(problem)
        self.notifiers = build_notifiers(settings.mqtt.model_copy(
            update={"client_id": f"{settings.mqtt.client_id}-notify"}), settings.notify)
        self.open: _Open | None = None
        self.pending: dict[str, deque[list[AlarmEvent]]] = {"escalator": deque(),
                                                            "feed": deque()}
        self._pending_events = {name: 0 for name in self.pending}
        self.dropped_events = 0         # events dropped from full queues (all consumers)
        # notifications given up for good: the gateway is degraded while there are any
        self.failed_notifications = 0
        self._lock = asyncio.Lock()

    async def ready(self) -> _Open:
        """The open database and what works on it (opened now if need be; raises if the
        database does not answer)."""
        if self.open is None:
            s, site = self.settings, self.site
            db = await asyncio.to_thread(Database, s.database_url, True, s.audit.key_bytes())
            try:
                changed = await asyncio.to_thread(record_changes, db, site.enterprise,
                                                  site.table, str(s.config),
                                                  self.clock.now_ms())
            except Exception:
                db.close()
                raise
            if changed:
                log.warning("config: alarm settings of %d point(s) changed since the last "
                            "start (audit-logged)", changed)
            self.open = _Open(
                db, Escalator(db, site.escalation, site.contacts, site.enterprise,
                              site.source_levels),
                RegisterFeed(Register(db, self.clock), site.register_rules, site.enterprise,
                             self.recent, site.contacts),
                Delivery(db, self.notifiers, clock=self.clock,
                         instance=s.mqtt.client_id))
        return self.open

    async def _record_pending(self) -> None:
        async with self._lock:
            o = await self.ready()
            for name, fn in (("escalator", o.escalator.record), ("feed", o.feed.on_events)):
                queue = self.pending[name]
                while queue:
                    await asyncio.to_thread(fn, queue[0])
                    self._pending_events[name] -= len(queue.popleft())

    async def sink(self, events: list[AlarmEvent]) -> None:
        """The alarm sink: queue, and record now if the database answers. A failure leaves
        them queued; the escalation clock retries first thing and is the one that says it
        (once) and shows it in /health. The queues are bounded (``MAX_PENDING_EVENTS``):
        beyond, the oldest are dropped, said once and counted (they are in InfluxDB)."""
        for name, queue in self.pending.items():
            queue.append(events)
            self._pending_events[name] += len(events)
            while self._pending_events[name] > MAX_PENDING_EVENTS and len(queue) > 1:
                dropped = len(queue.popleft())
                self._pending_events[name] -= dropped
                if not self.dropped_events:
                    log.error("escalation: the database has been away for more than %d alarm "
                              "events: the oldest are no longer kept for the %s (counted; "
                              "InfluxDB has them all)", MAX_PENDING_EVENTS, name)
                self.dropped_events += dropped
        with contextlib.suppress(Exception):
            await self._record_pending()

    async def clock_step(self) -> None:
        """One tick of the escalation clock: record what waits, fire the steps due."""
        await self._record_pending()
        o = await self.ready()
        now = self.clock.now_ms()
        fired = await asyncio.to_thread(o.escalator.tick, now)
        await asyncio.to_thread(o.feed.tick, now)
        if fired:
            log.warning("escalated: %s", ", ".join(
                f"{f.alarm_id} step {f.step} → {'/'.join(f.roles)}" for f in fired))
            await o.delivery.run_once()

    async def audit_step(self) -> tuple[int, str] | None:
        """Seal the alarm history and transitions appended since the last seal; returns the
        audit log's head (id, hash) to anchor where the database's users cannot write."""
        o = self.open
        if o is None:           # opened by the escalation clock, which says when it cannot
            return None
        now = self.clock.now_ms()

        def seal_and_head() -> tuple[int, str] | None:
            for _ in range(5):          # bounded: 5 × SEAL_MAX_ROWS rows a step
                with o.db.session.begin() as s:
                    if audit.seal(s, now) is None:
                        break
            with o.db.session() as s:
                return audit.head(s)
        return await asyncio.to_thread(seal_and_head)

    async def delivery_step(self) -> None:
        """One round of the outbox (nothing while the database has not been opened yet:
        the escalation clock reports that), then how many notifications are given up."""
        if self.open is not None:
            await self.open.delivery.run_once()
            self.failed_notifications = await asyncio.to_thread(failed_count, self.open.db)

    def close(self) -> None:
        """Close the notifiers and the database."""
        for n in self.notifiers.made():
            n.close()
        if self.open is not None:
            self.open.db.close()
