"""The alerting engine: compiled rules, their state, the alarm lifecycle and its health.

``process(batch)`` and ``tick(now)`` return alarm events; operator actions (acknowledge,
shelve, suppress, out of service) are methods that return the event they cause. Alarm ids are
``<point>:<type>`` (e.g. ``GT101:process``) or ``<vote>:vote``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerting.batch import ReadingBatch
from alerting.conditions import Changes, evaluate, tick
from alerting.health import STALE_ALARM_MS, AlarmHealth, FloodChange
from alerting.lifecycle import AlarmState, InvalidTransitionError, Lifecycle, Transition
from alerting.state import RuleState
from alerting.table import (
    ALARM_TYPES,
    FAULT,
    FLATLINE,
    POINT_TYPES,
    PREDICTIVE,
    PROCESS,
    ROC,
    STALE,
    TAMPER,
    VOTE,
    RuleTable,
)

PROCESS_LEVELS = {-2: "LL", -1: "L", 0: "normal", 1: "H", 2: "HH"}
TYPE_LEVELS = {ROC: {1: "rising", -1: "falling"}, PREDICTIVE: {1: "toward_high",
                                                               -1: "toward_low"},
               FLATLINE: {1: "suspect", 2: "fail"}, TAMPER: {1: "drop_to_zero"},
               FAULT: {1: "fault", 2: "no_answer"}}
DEVICE = "device"      # the alarm type of a device (or connection) off line
PRIORITY_NAMES = {1: "emergency", 2: "high", 3: "medium", 4: "low"}
STATE_NAMES = {s: s.name.lower() for s in AlarmState}
ANNUNCIATING = ("activate", "raise", "re-alarm", "chattering")


# Not frozen: a frozen dataclass pays a setattr per field, and events are made per alarm.
@dataclass(slots=True)
class AlarmEvent:
    """One lifecycle event of one alarm, with names instead of indexes."""

    alarm_id: str
    alarm_type: str
    point: str | None
    source: str
    equipment: str
    console: str
    kind: str
    ts: int
    event: str
    state: str
    prev_state: str
    level: int            # as shown: a latching alarm's highest level until reset
    level_name: str
    prev_level: int       # the condition's level before this event
    gb50493_level: int | None
    priority: int
    value: float | None
    limit: float | None
    forecast_s: float | None
    user: str | None
    reason: str | None
    annunciated: bool
    toxic: bool
    current_level: int = 0   # the condition's level now (beside the latched ``level``)
    members: tuple[str, ...] = ()   # the points of a device or vote alarm

    @property
    def sort_key(self) -> tuple[int, int, int, int]:
        """Display order: priority, toxic before combustible, more severe first, older first."""
        return (self.priority, 0 if self.toxic else 1, -abs(self.level), self.ts)


class Engine:
    """Everything the alerting core knows about one enterprise's alarms."""

    def __init__(self, table: RuleTable) -> None:
        self.table = table
        self.state = RuleState.fresh(table)
        n, nv = len(table), len(table.votes)
        extra = nv + len(table.devices)             # slots after the point types
        latched = np.concatenate([np.tile(table.latched, POINT_TYPES) & _process_mask(n),
                                  np.zeros(extra, bool)])
        re_alarm = np.concatenate([np.tile(table.re_alarm_ms, POINT_TYPES)
                                   * _process_mask(n), np.zeros(extra, np.int64)])
        maskable = np.zeros(table.n_alarms, bool)
        on_device = table.device_of >= 0
        maskable[FAULT * n:(FAULT + 1) * n] = on_device
        maskable[STALE * n:(STALE + 1) * n] = on_device
        self.lifecycle = Lifecycle(latched, re_alarm, maskable)
        self._device_index = {d.name: i for i, d in enumerate(table.devices)}
        self.health = AlarmHealth(sorted(set(table.consoles) | {"control_room"}))
        self._vote_index = {v.name: i for i, v in enumerate(table.votes)}
        # Plain Python copies for naming events: indexing numpy per event costs microseconds.
        self._ids = table.names
        self._gas: list[bool] = table.is_gas.tolist()
        self._toxic: list[bool] = table.is_toxic.tolist()
        consoles = sorted(self.health.consoles)
        self._console_index = {c: i for i, c in enumerate(consoles)}
        per_point = np.array([self._console_index[c] for c in table.consoles], np.int16)
        per_vote = np.array([self._console_index[table.consoles[int(v.members[0])]]
                             for v in table.votes], np.int16)
        per_device = np.array([self._console_index[table.consoles[int(d.members[0])]]
                               for d in table.devices], np.int16)
        self._slot_console = np.concatenate([np.tile(per_point, POINT_TYPES), per_vote,
                                             per_device])
        self._point_index = table.position
        self._suppressible = np.flatnonzero(table.supp_ctrl >= 0)
        self._suppressed = np.zeros(len(table), bool)

    # -- input -------------------------------------------------------------------------------
    def process(self, batch: ReadingBatch) -> list[AlarmEvent]:
        """Evaluate a batch; events of every alarm it moved, in time order."""
        transitions = self.lifecycle.apply(evaluate(self.table, self.state, batch))
        if self._suppressible.size and len(batch):
            transitions += self._design_suppression(int(batch.ts_ms.max()))
        return self._events(transitions)

    def _design_suppression(self, ts: int) -> list[Transition]:
        """Suppress or release the process alarms of points whose controlling point (say, the
        pump's run signal) crossed its bound in this batch. Evaluated per batch, from the
        controlling point's latest value."""
        tb, n, lc = self.table, len(self.table), self.lifecycle
        pts = self._suppressible
        ctrl_v = self.state.last_v[tb.supp_ctrl[pts]]
        with np.errstate(invalid="ignore"):
            now = (ctrl_v < tb.supp_below[pts]) | (ctrl_v > tb.supp_above[pts])
        out = []
        for p in pts[now != self._suppressed[pts]].tolist():
            on = not self._suppressed[p]
            self._suppressed[p] = on
            ctrl = self._ids[int(tb.supp_ctrl[p])]
            for kind in (PROCESS, ROC, PREDICTIVE, FLATLINE):
                slot = kind * n + p
                state = lc.state[slot]
                if on and state not in (AlarmState.SHELVED, AlarmState.SUPPRESSED,
                                        AlarmState.OUT_OF_SERVICE):
                    out.append(lc.suppress(slot, f"by design: {ctrl} out of its range", ts))
                elif not on and state == AlarmState.SUPPRESSED:
                    out.append(lc.unsuppress(slot, ts))
        return out

    def tick(self, now_ms: int) -> list[AlarmEvent]:
        """Clock-driven work: stale points, shelving expiry, re-alarm, chatter and flood end."""
        changes: Changes = tick(self.table, self.state, now_ms)
        events = self._events(self.lifecycle.apply(changes) + self.lifecycle.tick(now_ms))
        return events + [self._flood_event(f) for f in self.health.tick(now_ms)]

    # -- operator actions --------------------------------------------------------------------
    def acknowledge(self, alarm_id: str, user: str, ts: int,
                    comment: str | None = None) -> AlarmEvent:
        """Acknowledge an unacknowledged alarm."""
        return self._one(self.lifecycle.acknowledge(self.slot(alarm_id), user, ts, comment))

    def shelve(self, alarm_id: str, user: str, reason: str, until_ts: int,
               ts: int) -> AlarmEvent:
        """Shelve until a time; still evaluated and recorded."""
        return self._one(self.lifecycle.shelve(self.slot(alarm_id), user, reason, until_ts, ts))

    def unshelve(self, alarm_id: str, user: str, ts: int) -> AlarmEvent:
        """End shelving early."""
        return self._one(self.lifecycle.unshelve(self.slot(alarm_id), user, ts))

    def suppress(self, alarm_id: str, reason: str, ts: int) -> AlarmEvent:
        """Suppress by design."""
        return self._one(self.lifecycle.suppress(self.slot(alarm_id), reason, ts))

    def unsuppress(self, alarm_id: str, ts: int) -> AlarmEvent:
        """End suppression by design."""
        return self._one(self.lifecycle.unsuppress(self.slot(alarm_id), ts))

    def remove_from_service(self, alarm_id: str, user: str, reason: str,
                            ts: int) -> AlarmEvent:
        """Take an alarm out of service (person and reason required)."""
        return self._one(self.lifecycle.remove_from_service(self.slot(alarm_id), user, reason,
                                                            ts))

    def return_to_service(self, alarm_id: str, user: str, ts: int) -> AlarmEvent:
        """Put an alarm back in service."""
        return self._one(self.lifecycle.return_to_service(self.slot(alarm_id), user, ts))

    # -- queries -----------------------------------------------------------------------------
    def slot(self, alarm_id: str) -> int:
        """The slot of an alarm id; InvalidTransitionError for an unknown id."""
        name, _, kind = alarm_id.rpartition(":")
        if kind == "vote" and name in self._vote_index:
            return POINT_TYPES * len(self.table) + self._vote_index[name]
        if kind == DEVICE and name in self._device_index:
            return self.table.first_device_slot + self._device_index[name]
        if kind in ALARM_TYPES[:POINT_TYPES] and name in self._point_index:
            return ALARM_TYPES.index(kind) * len(self.table) + self._point_index[name]
        raise InvalidTransitionError(f"unknown alarm {alarm_id!r}")

    def alarm_id(self, slot: int) -> str:
        """The id of a slot."""
        n = len(self._ids)
        if slot >= self.table.first_device_slot:
            return f"{self.table.devices[slot - self.table.first_device_slot].name}:{DEVICE}"
        if slot >= POINT_TYPES * n:
            return f"{self.table.votes[slot - POINT_TYPES * n].name}:vote"
        return f"{self._ids[slot % n]}:{ALARM_TYPES[slot // n]}"

    def standing(self) -> list[AlarmEvent]:
        """Alarms not in NORMAL, in display order (priority, toxic first, severity, age)."""
        slots = np.flatnonzero(self.lifecycle.state != AlarmState.NORMAL).tolist()
        return sorted(map(self.describe, slots), key=lambda e: e.sort_key)

    def describe(self, slot: int) -> AlarmEvent:
        """An alarm as it stands now (event ``standing``): state, levels, priority."""
        lc = self.lifecycle
        state = AlarmState(lc.state[slot])
        return self._event(Transition(slot, int(lc.since[slot]), "standing", state, state,
                                      int(lc.condition[slot]), int(lc.condition[slot]),
                                      float(lc.value[slot]), np.nan, np.nan,
                                      shown=lc.shown(slot)))

    def recent(self, point: str) -> list[tuple[int, float]]:
        """The point's last valid samples the windowed rules keep (oldest first; empty for a
        point without windowed rules) — the evidence snapshot of a register entry."""
        idx = self.table.position.get(point, -1)
        if idx < 0:
            return []
        st = self.state
        cap = st.ring.shape[1]
        n = int(min(st.ring_n[idx], cap))
        order = [(int(st.ring_n[idx]) - n + k) % cap for k in range(n)]
        return [(int(st.ring[idx, j, 0]), float(st.ring[idx, j, 1])) for j in order]

    def counts(self, now_ms: int, console: str | None = None) -> dict[str, int]:
        """Alarms per lifecycle state, chattering and stale (active ≥ 24 h) alarms, for one
        console or all."""
        lc = self.lifecycle
        mine = (self._slot_console == self._console_index[console] if console is not None
                else np.ones(len(lc), bool))
        out = {s.name.lower(): int(np.count_nonzero(mine & (lc.state == s)))
               for s in AlarmState}
        out["chattering"] = sum(1 for s in lc.chattering if mine[s])
        active = (lc.state == AlarmState.UNACK) | (lc.state == AlarmState.ACK)
        out["stale"] = int(np.count_nonzero(mine & active & (lc.since >= 0)
                                            & (now_ms - lc.since >= STALE_ALARM_MS)))
        return out

    # -- naming ------------------------------------------------------------------------------
    def _one(self, t: Transition) -> AlarmEvent:
        return self._events([t])[0]

    def _events(self, transitions: list[Transition]) -> list[AlarmEvent]:
        out: list[AlarmEvent] = []
        for t in sorted(transitions, key=lambda t: (t.ts, t.slot)):
            e = self._event(t)
            out.append(e)
            if e.annunciated and e.event in ANNUNCIATING:
                flood = self.health.annunciated(e.console, e.ts)
                if flood is not None:
                    out.append(self._flood_event(flood))
        return out

    def _event(self, t: Transition) -> AlarmEvent:
        tb, n = self.table, len(self._ids)
        if t.slot >= tb.first_device_slot:
            return self._device_event(t)
        if t.slot >= POINT_TYPES * n:
            vote = tb.votes[t.slot - POINT_TYPES * n]
            atype, point, source, equipment = VOTE, None, vote.source, vote.equipment
            console, kind, toxic, gas = tb.consoles[int(vote.members[0])], "vote", bool(
                tb.is_toxic[vote.members].any()), bool(tb.is_gas[vote.members].any())
            members = tuple(self._ids[m] for m in vote.members.tolist())
        else:
            atype, p = divmod(t.slot, n)
            point, source, equipment = self._ids[p], tb.sources[p], tb.equipments[p]
            console, kind = tb.consoles[p], tb.kinds[p]
            toxic, gas = self._toxic[p], self._gas[p]
            members = ()
        level = t.level if t.shown is None else t.shown
        if atype == PROCESS:
            name = PROCESS_LEVELS[level]
        elif atype in TYPE_LEVELS:
            name = TYPE_LEVELS[atype].get(level, "normal")
        else:
            name = ALARM_TYPES[atype] if level else "normal"
        return AlarmEvent(
            alarm_id=self.alarm_id(t.slot), alarm_type=ALARM_TYPES[atype], point=point,
            source=source, equipment=equipment, console=console, kind=kind, ts=t.ts,
            event=t.event, state=STATE_NAMES[t.to_state], prev_state=STATE_NAMES[t.from_state],
            level=level, level_name=name, prev_level=t.prev_level,
            gb50493_level=abs(level) if atype == PROCESS and gas and level > 0 else None,
            priority=_priority(atype, max(abs(level), abs(t.prev_level)), gas),
            value=_f(t.value), limit=_f(t.limit),
            forecast_s=_f(t.info) if atype == PREDICTIVE else None, user=t.user,
            reason=t.reason, annunciated=t.annunciated, toxic=toxic, current_level=t.level,
            members=members)

    def _device_event(self, t: Transition) -> AlarmEvent:
        """A device off line: one alarm for all the points it delivers (listed)."""
        tb = self.table
        dev = tb.devices[t.slot - tb.first_device_slot]
        first = int(dev.members[0])
        level = t.level if t.shown is None else t.shown
        return AlarmEvent(
            alarm_id=self.alarm_id(t.slot), alarm_type=DEVICE, point=None,
            source=tb.sources[first], equipment=tb.equipments[first], console=tb.consoles[first],
            kind=DEVICE, ts=t.ts, event=t.event, state=STATE_NAMES[t.to_state],
            prev_state=STATE_NAMES[t.from_state], level=level,
            level_name="off_line" if level else "normal", prev_level=t.prev_level,
            gb50493_level=None, priority=2, value=None, limit=None, forecast_s=None,
            user=t.user, reason=t.reason, annunciated=t.annunciated, toxic=False,
            current_level=t.level, members=tuple(self._ids[m] for m in dev.members.tolist()))

    def _flood_event(self, f: FloodChange) -> AlarmEvent:
        return AlarmEvent(
            alarm_id=f"{f.console}:flood", alarm_type="flood", point=None, source="",
            equipment="", console=f.console, kind="console", ts=f.ts,
            event="flood_start" if f.starts else "flood_end", state="active" if f.starts
            else "normal", prev_state="normal" if f.starts else "active",
            level=int(f.starts), level_name="flood" if f.starts else "normal",
            prev_level=int(not f.starts), gb50493_level=None, priority=2, value=float(f.count),
            limit=None, forecast_s=None, user=None, reason=None, annunciated=True, toxic=False)


def _process_mask(n: int) -> npt.NDArray[np.bool_]:
    """True for the PROCESS slots of the point types (latching and re-alarm apply there)."""
    mask = np.zeros(POINT_TYPES * n, bool)
    mask[PROCESS * n:(PROCESS + 1) * n] = True
    return mask


def _f(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _priority(atype: int, level: int, gas: bool) -> int:
    """1 emergency .. 4 low. Gas L2 (and 2ooN votes of them) first; a predictive warning is
    never above low, since it is not a GB/T 50493 alarm."""
    a = abs(level)
    if atype in (PROCESS, VOTE):
        if gas or atype == VOTE:
            return 1 if a >= 2 or atype == VOTE else 2
        return 2 if a >= 2 else 3
    if atype == TAMPER:
        return 2
    if atype == PREDICTIVE:
        return 4
    if atype == FLATLINE:
        return 3 if a >= 2 else 4
    return 3  # rate of change, fault, stale
