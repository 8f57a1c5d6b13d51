"""The escalation clock: alarm events are recorded (``alarm_history``: every transition with
who, when and why) and open and close occurrences in the database; a tick fires the policy
steps that are due (``alerting.escalation``).

Everything the clock needs is in the database: when each occurrence was annunciated and which
steps already fired (unique per occurrence and step). A restarted gateway therefore neither
forgets a climb nor repeats a step; after a long stop, every step that fell due meanwhile
fires on the first tick, once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerting.engine import ANNUNCIATING, AlarmEvent
from alerting.escalation import UNHANDLED_STATES, Contacts, EscalationConfig, Role
from gateway.alarms.outbox import enqueue_for_roles, feed_message
from gateway.store.models import Alarm, AlarmHistory, Database, Escalation, ours

# The escalation "step" of the notice that an emergency alarm was shelved or taken out of
# service (below every real step; the report's "escalated" counts steps ≥ 1 only).
HIDDEN_NOTICE = -1


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class Fired:
    """One escalation step that fired: whom to tell about which alarm."""

    alarm_id: str
    annunciated_ms: int
    source: str
    point: str | None
    priority: int
    level_name: str
    value: float | None
    limit: float | None
    step: int
    roles: tuple[Role, ...]
    fired_ms: int


def record_events(s: Session, events: list[AlarmEvent], enterprise: str = "") -> None:
    """Record ``enterprise``'s events in the caller's transaction: a history row each (who,
    when, why), and the occurrence they open, update or close (an operator action lands
    with its audit record in one transaction: ``gateway.api.alarms``). An event recorded
    before (the same alarm, time and event) is skipped whole."""
    for e in events:
        if e.point is None and e.alarm_type not in ("vote", "device"):
            continue                  # flood events are about the system, not a point
        if s.execute(select(AlarmHistory.id).where(
                ours(AlarmHistory.enterprise, enterprise),
                AlarmHistory.alarm_id == e.alarm_id, AlarmHistory.ts_ms == e.ts,
                AlarmHistory.event == e.event).limit(1)).first() is not None:
            # the same event again: messages redelivered after a crash are evaluated
            # again from the state saved before them, and make the same events
            continue
        s.add(AlarmHistory(enterprise=enterprise, alarm_id=e.alarm_id, ts_ms=e.ts,
                           event=e.event,
                           from_state=e.prev_state, to_state=e.state,
                           level_name=e.level_name, priority=e.priority,
                           value=_finite(e.value), limit=_finite(e.limit),
                           user=e.user, reason=e.reason))
        row = s.execute(select(Alarm).where(ours(Alarm.enterprise, enterprise),
                                            Alarm.alarm_id == e.alarm_id,
                                            Alarm.handled_ms.is_(None))
                        ).scalar_one_or_none()
        if e.state in UNHANDLED_STATES:
            if row is None and e.annunciated and e.event in ANNUNCIATING:
                s.add(Alarm(enterprise=enterprise, alarm_id=e.alarm_id,
                            annunciated_ms=e.ts, source=e.source,
                            point=e.point, priority=e.priority,
                            level_name=e.level_name, value=e.value, limit=e.limit,
                            state=e.state))
            elif row is not None:
                # more severe, or within the level annunciated, or back to normal
                # but latched: the same occurrence (one per activation). A raise
                # moves its level, value and limit together: a notification tells
                # one moment, never the L2 level with the L1 crossing's value.
                row.state = e.state
                if e.annunciated and e.event in ANNUNCIATING and e.level:
                    row.priority = min(row.priority, e.priority)
                    row.level_name = e.level_name
                    row.value, row.limit = _finite(e.value), _finite(e.limit)
        elif row is not None:
            row.state = e.state
            row.handled_ms = e.ts
            row.handled_by = e.user or e.event
            row.handled_event = e.event


class Escalator:
    """Follows alarm occurrences and fires their escalation steps."""

    def __init__(self, db: Database, cfg: EscalationConfig, contacts: Contacts | None = None,
                 enterprise: str = "", source_levels: Mapping[str, str] | None = None) -> None:
        self.db = db
        self.cfg = cfg
        self.contacts = contacts
        self.enterprise = enterprise
        self.source_levels = dict(source_levels or {})

    def record(self, events: list[AlarmEvent]) -> None:
        """Open an occurrence when an alarm is annunciated, close it when it is handled."""
        with self.db.session.begin() as s:
            record_events(s, events, self.enterprise)

    def tick(self, now_ms: int) -> list[Fired]:
        """Fire every step that is due; returns them (for the notifiers)."""
        fired: list[Fired] = []
        try:
            with self.db.session.begin() as s:
                for row in s.execute(select(Alarm).where(
                        ours(Alarm.enterprise, self.enterprise), Alarm.handled_ms.is_(None))
                        .order_by(Alarm.id)).scalars():
                    policy = self.cfg.policy_for(row.source, row.priority)
                    if policy is None:
                        continue
                    done = set(s.execute(select(Escalation.step)
                                         .where(Escalation.alarm_row == row.id)).scalars())
                    for i in policy.due(row.annunciated_ms, now_ms, done):
                        roles = tuple(policy.steps[i].roles)
                        s.add(Escalation(alarm_row=row.id, step=i, roles=",".join(roles),
                                         fired_ms=now_ms))
                        f = Fired(row.alarm_id, row.annunciated_ms, row.source, row.point,
                                  row.priority, row.level_name, row.value, row.limit, i, roles,
                                  now_ms)
                        fired.append(f)
                        if self.contacts is not None:
                            # in the step's own transaction: no step without its messages
                            self._enqueue(s, f)
                fired += self._hidden_critical(s, now_ms)
        except IntegrityError:
            # another gateway instance fired the same steps first: they are not ours to send
            return []
        return fired

    def _hidden_critical(self, s: Session, now_ms: int) -> list[Fired]:
        """An emergency alarm shelved or taken out of service is told to every role of its
        escalation policy at once (step ``HIDDEN_NOTICE``, once per occurrence): the chain
        would otherwise stop without a word."""
        told = select(Escalation.id).where(Escalation.alarm_row == Alarm.id,
                                           Escalation.step == HIDDEN_NOTICE).exists()
        out: list[Fired] = []
        for row in s.execute(select(Alarm).where(
                Alarm.priority == 1, Alarm.handled_event.in_(("shelve", "remove")), ~told,
                ours(Alarm.enterprise, self.enterprise))
                ).scalars():
            policy = self.cfg.policy_for(row.source, row.priority)
            if policy is None:
                continue
            roles = tuple(dict.fromkeys(r for st in policy.steps for r in st.roles))
            s.add(Escalation(alarm_row=row.id, step=HIDDEN_NOTICE, roles=",".join(roles),
                             fired_ms=now_ms))
            f = Fired(row.alarm_id, row.annunciated_ms, row.source, row.point, row.priority,
                      row.level_name, row.value, row.limit, HIDDEN_NOTICE, roles, now_ms)
            out.append(f)
            if self.contacts is not None:
                self._enqueue(s, f, "shelved" if row.handled_event == "shelve"
                              else "out_of_service", row.handled_by)
        return out

    def _enqueue(self, s: Session, f: Fired, kind: str = "escalation",
                 by: str | None = None) -> None:
        assert self.contacts is not None
        # the enterprise in the key: alarm ids repeat across enterprises, keys must not
        base = f"{self.enterprise}/{f.alarm_id}@{f.annunciated_ms}/" + (
            f"step{f.step}" if f.step != HIDDEN_NOTICE else kind)
        message = feed_message(
            key=base, enterprise=self.enterprise, source=f.source,
            source_level=self.source_levels.get(f.source), point=f.point, value=f.value,
            limit=f.limit, alarm_level=f.level_name, priority=f.priority,
            annunciated_ms=f.annunciated_ms, escalated_ms=f.fired_ms, step=f.step,
            roles=list(f.roles))
        if kind != "escalation":
            message |= {"kind": kind, "by": by}
        enqueue_for_roles(s, self.contacts, f.source, list(f.roles), base, message, f.fired_ms)

    def history(self, alarm_id: str) -> list[AlarmHistory]:
        """Every recorded event of an alarm, oldest first."""
        with self.db.session() as s:
            return list(s.execute(select(AlarmHistory).where(
                ours(AlarmHistory.enterprise, self.enterprise),
                AlarmHistory.alarm_id == alarm_id).order_by(AlarmHistory.id)).scalars())

    def steps_fired(self, alarm_id: str) -> list[tuple[int, int]]:
        """(step, fired_ms) of the latest occurrence of an alarm."""
        with self.db.session() as s:
            row = s.execute(select(Alarm).where(ours(Alarm.enterprise, self.enterprise),
                                                Alarm.alarm_id == alarm_id)
                            .order_by(Alarm.id.desc()).limit(1)).scalar_one_or_none()
            if row is None:
                return []
            return [(e.step, e.fired_ms) for e in s.execute(
                select(Escalation).where(Escalation.alarm_row == row.id)
                .order_by(Escalation.step)).scalars()]


def escalation_state(db: Database) -> list[dict[str, object]]:
    """Open (unhandled) occurrences with the steps that fired, oldest first."""
    with db.session() as s:
        out: list[dict[str, object]] = []
        for row in s.execute(select(Alarm).where(Alarm.handled_ms.is_(None))
                             .order_by(Alarm.id)).scalars():
            steps = [{"step": e.step, "roles": e.roles.split(","), "fired_ms": e.fired_ms}
                     for e in s.execute(select(Escalation).where(Escalation.alarm_row == row.id)
                                        .order_by(Escalation.step)).scalars()]
            out.append({"enterprise": row.enterprise, "alarm_id": row.alarm_id,
                        "annunciated_ms": row.annunciated_ms,
                        "source": row.source, "priority": row.priority,
                        "level_name": row.level_name, "state": row.state, "steps": steps})
        return out
