"""Alarms that become hazard register entries by themselves (``alerting.register.
RegisterRules``): integrity alarms (tamper, flatline) when they activate, an alarm that
activates ``recurrences`` times within the window, and an occurrence nobody handled for longer
than ``unhandled_longer_than_s`` (read from the escalation clock's ``alarm`` table). A point
gets one open entry per source: while it is open, further alarms add nothing.

Entries past their deadline and not closed are told once to ``overdue_roles`` through the
notification outbox (format: ``kind: register_overdue``).

The evidence of an entry holds the alarm ids and the point's recent samples at that moment.
Activation counts for the recurrence rule are kept in memory: a restart starts them afresh.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable

from sqlalchemy import select

from alerting.engine import AlarmEvent
from alerting.escalation import Contacts
from alerting.register import Level, RegisterRules, Source
from gateway.alarms.outbox import enqueue_for_roles
from gateway.store.models import Alarm, RegisterEntry, ours
from gateway.store.register import Register

INTEGRITY_TYPES = ("tamper", "flatline")
Snapshot = Callable[[str], list[tuple[int, float]]]


class RegisterFeed:
    """Creates register entries from alarm events and the escalation clock's occurrences."""

    def __init__(self, register: Register, rules: RegisterRules, enterprise: str,
                 snapshot: Snapshot | None = None, contacts: Contacts | None = None) -> None:
        self.register = register
        self.rules = rules
        self.enterprise = enterprise
        self.snapshot = snapshot
        self.contacts = contacts
        self._activations: defaultdict[str, deque[int]] = defaultdict(deque)
        self.created: list[int] = []

    def on_events(self, events: list[AlarmEvent]) -> None:
        """Integrity and recurrence rules (call with every batch of alarm events)."""
        r = self.rules
        for e in events:
            if e.event != "activate" or e.point is None:
                continue
            if r.integrity and e.alarm_type in INTEGRITY_TYPES:
                self._ensure(e.source, e.point, "integrity", "general",
                             f"{e.point}: {e.alarm_type} ({e.level_name}) — sensor integrity",
                             [e.alarm_id], e.ts)
            if r.recurrences:
                seen = self._activations[e.alarm_id]
                if e.ts in seen:
                    continue        # the same activation again (redelivered after a crash)
                seen.append(e.ts)
                while seen and seen[0] < e.ts - r.recurrence_window_s * 1000:
                    seen.popleft()
                if len(seen) >= r.recurrences:
                    self._ensure(e.source, e.point, "alarm_recurrence",
                                 "major" if e.priority == 1 else "general",
                                 f"{e.alarm_id} activated {len(seen)} times in "
                                 f"{r.recurrence_window_s / 3600:g} h", [e.alarm_id], e.ts)

    def tick(self, now_ms: int) -> None:
        """The duration rule (occurrences unhandled for too long), and overdue entries."""
        self._overdue(now_ms)
        limit = self.rules.unhandled_longer_than_s
        if limit is None:
            return
        with self.register.db.session() as s:
            rows = list(s.execute(select(Alarm).where(
                ours(Alarm.enterprise, self.enterprise), Alarm.handled_ms.is_(None),
                Alarm.annunciated_ms <= now_ms - int(limit * 1000))).scalars())
        for row in rows:
            if row.point is None:
                continue
            self._ensure(row.source, row.point, "alarm_duration",
                         "major" if row.priority == 1 else "general",
                         f"{row.alarm_id} ({row.level_name}) unhandled for more than "
                         f"{limit / 60:g} min", [f"{row.alarm_id}@{row.annunciated_ms}"], now_ms)

    def _overdue(self, now_ms: int) -> None:
        """Tell ``overdue_roles`` once about each entry past its deadline (the outbox key
        makes it once, also across restarts)."""
        if self.contacts is None or not self.rules.overdue_roles:
            return
        for e in self.register.overdue(now_ms):
            base = f"register/{e.id}/overdue@{e.deadline_ms}"
            message = {"v": 1, "kind": "register_overdue", "key": base,
                       "enterprise": self.enterprise, "entry": e.id, "title": e.title,
                       "hazard_source": {"code": e.hazard_source}, "point": e.point,
                       "level": e.level, "state": e.state, "deadline_ms": e.deadline_ms,
                       "responsible_person": e.responsible_person,
                       "roles": list(self.rules.overdue_roles), "escalated_ms": now_ms}
            with self.register.db.session.begin() as s:
                enqueue_for_roles(s, self.contacts, e.hazard_source,
                                  list(self.rules.overdue_roles), base, message, now_ms)

    def _ensure(self, source: str, point: str, why: Source, level: Level, title: str,
                alarm_ids: list[str], now_ms: int) -> None:
        with self.register.db.session() as s:
            open_one = s.execute(select(RegisterEntry.id).where(
                RegisterEntry.point == point, RegisterEntry.source == why,
                RegisterEntry.state != "closed")).first()
        if open_one is not None:
            return
        evidence = {"alarm_ids": alarm_ids,
                    "samples": self.snapshot(point) if self.snapshot else []}
        self.created.append(self.register.create(
            enterprise=self.enterprise, hazard_source=source, point=point, title=title,
            level=level, source=why, actor="system", evidence=evidence, now_ms=now_ms))
