"""The ISA-18.2 alarm lifecycle of every alarm slot (IEC 62682; OPC UA Part 9 mechanics).

States: NORMAL, UNACK (active, unacknowledged), ACK (active, acknowledged), RTN_UNACK
(returned to normal, unacknowledged), SHELVED, SUPPRESSED (by design), OUT_OF_SERVICE.

Multi-level alarms (GB/T 50493 L1/L2, ISA-18.2 H/HH): an alarm remembers the highest level
it reached since it was last NORMAL (``peak``, signed: the side) and the level a person
acknowledged (``acked``). An acknowledgement holds for the level acknowledged and below: only
a rise above it (or to the other side: a new condition) annunciates again, so a reading that
swings L2 → L1 → L2 after an acknowledgement at L2 is recorded, not annunciated. Downward
steps need the higher limit's deadband and off-delay (``alerting.conditions``). A latching
alarm shows ``peak`` (the highest level reached) until it is acknowledged and its condition
has returned to normal; ``condition`` is the current level beside it.

Condition changes (``tests/alerting/test_lifecycle.py::CONDITION_TABLE`` checks each row).
"Above" means beyond ``peak`` in UNACK, beyond ``acked`` in ACK, or on the other side:

==============  ===========================  ==============================================
state           condition change             event → next state
==============  ===========================  ==============================================
NORMAL          becomes active               activate → UNACK
UNACK           above the peak               raise → UNACK
UNACK           not above, still active      change → UNACK (recorded, not annunciated)
UNACK           clears                       clear → RTN_UNACK if latched, else NORMAL
ACK             above the acknowledged one   raise → UNACK
ACK             not above, still active      change → ACK (recorded, not annunciated)
ACK             clears (latched or not)      clear → NORMAL (already acknowledged)
RTN_UNACK       becomes active, above peak   raise → UNACK
RTN_UNACK       becomes active, not above    activate → UNACK (not annunciated: the
                                             latched alarm is already standing)
any             fault/stale of a point       condition → unchanged (recorded, not
                whose device did not answer  annunciated: the device's off line alarm
                                             tells it once for all its points)
NORMAL          back to normal after a       condition → NORMAL (nothing to tell)
                change never told
SHELVED         above the peak               raise → UNACK (shelving ends: it worsened
                                             beyond what the person shelved)
SHELVED,        any other change             condition → unchanged (recorded, not
SUPPRESSED,                                  annunciated)
OUT_OF_SERVICE
any             third annunciation in 60 s   chattering → UNACK from NORMAL / RTN_UNACK,
                (activate, raise, re-alarm)  else unchanged; later changes are "condition"
                                             until 60 s quiet (chatter_end)
==============  ===========================  ==============================================

Operator and clock actions (``ACTION_TABLE`` checks each row; "refused" raises and changes
nothing):

==============  =================================  =========================================
action          allowed from                       event → next state
==============  =================================  =========================================
acknowledge     UNACK                              ack → ACK
acknowledge     RTN_UNACK                          ack → NORMAL
acknowledge     NORMAL, ACK, SHELVED, SUPPRESSED,  refused
                OUT_OF_SERVICE
shelve          UNACK, ACK, RTN_UNACK              shelve → SHELVED (until a time in the
                (annunciated alarms only)          future; person and reason required; who
                                                   may, how long and how often:
                                                   ``alerting.shelving``)
shelve          NORMAL, SHELVED, SUPPRESSED,       refused
                OUT_OF_SERVICE
unshelve,       SHELVED                            unshelve / shelve_expired → UNACK if the
expiry                                             condition is active, else NORMAL
suppress        NORMAL, UNACK, ACK, RTN_UNACK      suppress → SUPPRESSED
unsuppress      SUPPRESSED                         unsuppress → UNACK if active, else NORMAL
remove          any state but OUT_OF_SERVICE       remove → OUT_OF_SERVICE (person and
                                                   reason required)
return          OUT_OF_SERVICE                     return → UNACK if active, else NORMAL
re-alarm        ACK still active after re_alarm_s  re-alarm → UNACK
==============  =================================  =========================================

Shelved, suppressed and out-of-service alarms stay fully evaluated (OPC UA Part 9): their
condition changes are recorded, only not annunciated. Chattering (≥ 3 annunciations within
60 s, domain.md §6.3, EEMUA 191) is announced once; the alarm's further changes are then recorded
without being annunciated until it has been quiet for 60 s. Every transition carries who,
when and why; refused operator actions raise ``InvalidTransitionError`` and change nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from alerting.conditions import MASKED, Changes

CHATTER_COUNT = 3
CHATTER_WINDOW_MS = 60_000


class AlarmState(IntEnum):
    """ISA-18.2 states."""

    NORMAL = 0
    UNACK = 1
    ACK = 2
    RTN_UNACK = 3
    SHELVED = 4
    SUPPRESSED = 5
    OUT_OF_SERVICE = 6


S = AlarmState
STATES = list(AlarmState)   # by value: cheaper than AlarmState(x) on the event path
ACTIVE_STATES = (S.UNACK, S.ACK)
HIDDEN_STATES = (S.SHELVED, S.SUPPRESSED, S.OUT_OF_SERVICE)


class InvalidTransitionError(ValueError):
    """An operator action the alarm's state does not allow; nothing was changed."""


# Not frozen: a frozen dataclass pays a setattr per field, and events are made per alarm.
@dataclass(slots=True)
class Transition:
    """One lifecycle event of one alarm slot."""

    slot: int
    ts: int
    event: str
    from_state: AlarmState
    to_state: AlarmState
    level: int
    prev_level: int
    value: float
    limit: float
    info: float
    user: str | None = None
    reason: str | None = None
    annunciated: bool = True
    shown: int | None = None     # the level displayed (latched peak); None: ``level``


@dataclass(frozen=True, slots=True)
class Kept:
    """One slot's lifecycle memory (``Lifecycle.keep``)."""

    state: int
    condition: int
    since: int
    value: float
    peak: int
    acked: int
    shelved_until: int | None
    chattering: int | None
    activations: list[int] | None


class Lifecycle:
    """States of all alarm slots; condition changes and operator actions in, transitions out."""

    def __init__(self, latched: npt.NDArray[np.bool_], re_alarm_ms: npt.NDArray[np.int64],
                 maskable: npt.NDArray[np.bool_] | None = None):
        n = len(latched)
        self.latched = latched
        self.re_alarm_ms = re_alarm_ms
        # slots whose changes a device off line alarm may cover (its points' fault, stale)
        self.maskable = np.zeros(n, bool) if maskable is None else maskable
        self.state = np.zeros(n, np.int8)
        self.condition = np.zeros(n, np.int8)
        self.since = np.full(n, -1, np.int64)     # when the current state was entered
        self.value = np.full(n, np.nan)
        self.peak = np.zeros(n, np.int8)         # highest level since last NORMAL (signed)
        self.acked = np.zeros(n, np.int8)        # level acknowledged in this occurrence (abs)
        self.shelved_until: dict[int, int] = {}
        self._activations: dict[int, deque[int]] = {}
        self.chattering: dict[int, int] = {}      # slot → last activation while chattering

    def __len__(self) -> int:
        return len(self.state)

    def keep(self, slot: int) -> Kept:
        """Everything an operator action may change in one slot, for ``put_back``."""
        window = self._activations.get(slot)
        return Kept(int(self.state[slot]), int(self.condition[slot]), int(self.since[slot]),
                    float(self.value[slot]), int(self.peak[slot]), int(self.acked[slot]),
                    self.shelved_until.get(slot), self.chattering.get(slot),
                    None if window is None else list(window))

    def put_back(self, slot: int, k: Kept) -> None:
        """Undo an operator action whose record could not be written (``keep`` before it)."""
        self.state[slot], self.condition[slot], self.since[slot] = k.state, k.condition, k.since
        self.value[slot], self.peak[slot], self.acked[slot] = k.value, k.peak, k.acked
        for d, v in ((self.shelved_until, k.shelved_until), (self.chattering, k.chattering)):
            if v is None:
                d.pop(slot, None)
            else:
                d[slot] = v
        if k.activations is None:
            self._activations.pop(slot, None)
        else:
            self._activations[slot] = deque(k.activations, maxlen=CHATTER_COUNT)

    def _t(self, slot: int, ts: int, event: str, to: AlarmState, level: int, prev: int,
           value: float = np.nan, limit: float = np.nan, info: float = np.nan,
           user: str | None = None, reason: str | None = None,
           annunciated: bool = True) -> Transition:
        frm = STATES[self.state[slot]]
        if to != frm:
            self.since[slot] = ts
        self.state[slot] = to
        if to == S.NORMAL:
            self.peak[slot] = self.acked[slot] = 0
        return Transition(slot, ts, event, frm, to, level, prev, value, limit, info, user,
                          reason, annunciated, self.shown(slot))

    def shown(self, slot: int) -> int:
        """The level an alarm displays: its peak while a latching alarm stands (until it is
        acknowledged and normal again), else its current condition."""
        if self.latched[slot] and self.peak[slot] != 0:
            return int(self.peak[slot])
        return int(self.condition[slot])

    def apply(self, changes: Changes) -> list[Transition]:
        """Turn condition changes (time-ordered) into transitions."""
        out: list[Transition] = []
        for slot, ts, lvl, val, lim, info in zip(
                changes.slot.tolist(), changes.ts.tolist(), changes.level.tolist(),
                changes.value.tolist(), changes.limit.tolist(), changes.info.tolist(),
                strict=True):
            last = self.chattering.get(slot)
            if last is not None and ts - last >= CHATTER_WINDOW_MS:
                # quiet long enough before this change: the chatter ended (as a tick would say)
                del self.chattering[slot]
                out.append(self._end_chatter(slot, last + CHATTER_WINDOW_MS))
            out.append(self._condition(slot, ts, lvl, val, lim, info))
        return out

    def _condition(self, slot: int, ts: int, lvl: int, val: float, lim: float,
                   info: float) -> Transition:
        prev = int(self.condition[slot])
        self.condition[slot] = lvl
        self.value[slot] = val
        state = STATES[self.state[slot]]
        if (info == MASKED and self.maskable[slot]) or (lvl == 0 and state == S.NORMAL):
            # its device's off line alarm tells it (ISA-18.2 flood prevention: recorded, not
            # annunciated); or back to normal with nothing standing: nothing to tell
            return Transition(slot, ts, "condition", state, state, lvl, prev, val, lim, info,
                              annunciated=False, shown=self.shown(slot))
        if state == S.SHELVED and lvl != 0 and self._beyond_peak(slot, lvl):
            # worse than when it was shelved: shelving ends, the operator hears it
            self.shelved_until.pop(slot, None)
            self.peak[slot], self.acked[slot] = lvl, 0
            self.chattering.pop(slot, None)
            return self._t(slot, ts, "raise", S.UNACK, lvl, prev, val, lim, info,
                           reason="worsened while shelved")
        if slot in self.chattering or state in HIDDEN_STATES:
            if slot in self.chattering and prev == 0 and lvl != 0:
                self.chattering[slot] = ts        # still chattering: the quiet restarts
            return Transition(slot, ts, "condition", state, state, lvl, prev, val, lim, info,
                              annunciated=False, shown=self.shown(slot))
        if lvl == 0:
            return self._t(slot, ts, "clear", self._after_clear(slot, state), lvl, prev, val,
                           lim, info)
        peak = int(self.peak[slot])
        other_side = peak != 0 and (lvl > 0) != (peak > 0)
        if state == S.ACK:
            above = other_side or abs(lvl) > self.acked[slot]
        else:
            above = peak == 0 or other_side or abs(lvl) > abs(peak)
        if other_side or abs(lvl) > abs(peak):
            self.peak[slot] = lvl
        if other_side:
            self.acked[slot] = 0
        if not above:
            # within what was annunciated (or acknowledged): recorded, the row updates
            event = "activate" if state == S.RTN_UNACK else "change"
            to = S.UNACK if state == S.RTN_UNACK else state
            return self._t(slot, ts, event, to, lvl, prev, val, lim, info, annunciated=False)
        event = "activate" if state == S.NORMAL else "raise"
        if self._chatters(slot, ts):
            event = "chattering"
        return self._t(slot, ts, event, S.UNACK, lvl, prev, val, lim, info)

    def _beyond_peak(self, slot: int, lvl: int) -> bool:
        peak = int(self.peak[slot])
        return abs(lvl) > abs(peak) or (peak != 0 and (lvl > 0) != (peak > 0))

    def _chatters(self, slot: int, ts: int) -> bool:
        """Record an annunciation; True when it makes the alarm chatter (announced once)."""
        if slot in self.chattering:
            self.chattering[slot] = ts
            return False
        window = self._activations.setdefault(slot, deque(maxlen=CHATTER_COUNT))
        window.append(ts)
        if len(window) == CHATTER_COUNT and ts - window[0] <= CHATTER_WINDOW_MS:
            self.chattering[slot] = ts
            window.clear()
            return True
        return False

    def _resolved(self, slot: int) -> AlarmState:
        """The state an alarm returns to from shelving, suppression or out of service: a new
        occurrence, at the level it has now."""
        self.peak[slot], self.acked[slot] = self.condition[slot], 0
        return S.UNACK if self.condition[slot] != 0 else S.NORMAL

    def acknowledge(self, slot: int, user: str, ts: int, comment: str | None = None,
                    ) -> Transition:
        """Operator acknowledgement of an unacknowledged alarm."""
        state = AlarmState(int(self.state[slot]))
        lvl = int(self.condition[slot])
        self.acked[slot] = max(abs(int(self.peak[slot])), abs(lvl))
        if state == S.UNACK:
            return self._t(slot, ts, "ack", S.ACK, lvl, lvl, user=user, reason=comment)
        if state == S.RTN_UNACK:
            return self._t(slot, ts, "ack", S.NORMAL, lvl, lvl, user=user, reason=comment)
        raise InvalidTransitionError(f"alarm {slot} is {state.name}: nothing to acknowledge")

    def shelve(self, slot: int, user: str, reason: str, until_ts: int, ts: int) -> Transition:
        """Shelve until ``until_ts``; the alarm keeps being evaluated and recorded."""
        state = AlarmState(int(self.state[slot]))
        if state in HIDDEN_STATES or state == S.NORMAL:
            why = "not annunciated: nothing to shelve" if state == S.NORMAL else \
                "cannot be shelved"
            raise InvalidTransitionError(f"alarm {slot} is {state.name}: {why}")
        if until_ts <= ts:
            raise InvalidTransitionError("shelving must end in the future")
        _require(user, reason, "shelving")
        self.shelved_until[slot] = until_ts
        lvl = int(self.condition[slot])
        return self._t(slot, ts, "shelve", S.SHELVED, lvl, lvl, info=float(until_ts),
                       user=user, reason=reason)

    def unshelve(self, slot: int, user: str | None, ts: int, event: str = "unshelve",
                 ) -> Transition:
        """End shelving (by an operator, or ``event='shelve_expired'`` on the clock)."""
        if self.state[slot] != S.SHELVED:
            raise InvalidTransitionError(f"alarm {slot} is not shelved")
        self.shelved_until.pop(slot, None)
        lvl = int(self.condition[slot])
        return self._t(slot, ts, event, self._resolved(slot), lvl, lvl, user=user)

    def suppress(self, slot: int, reason: str, ts: int) -> Transition:
        """Suppression by design (e.g. the equipment is stopped)."""
        state = AlarmState(int(self.state[slot]))
        if state in HIDDEN_STATES:
            raise InvalidTransitionError(f"alarm {slot} is {state.name}: cannot be suppressed")
        lvl = int(self.condition[slot])
        return self._t(slot, ts, "suppress", S.SUPPRESSED, lvl, lvl, reason=reason)

    def unsuppress(self, slot: int, ts: int) -> Transition:
        """The design condition for suppression no longer holds."""
        if self.state[slot] != S.SUPPRESSED:
            raise InvalidTransitionError(f"alarm {slot} is not suppressed")
        lvl = int(self.condition[slot])
        return self._t(slot, ts, "unsuppress", self._resolved(slot), lvl, lvl)

    def remove_from_service(self, slot: int, user: str, reason: str, ts: int) -> Transition:
        """Out of service for maintenance: a person and a reason are required."""
        if self.state[slot] == S.OUT_OF_SERVICE:
            raise InvalidTransitionError(f"alarm {slot} is already out of service")
        _require(user, reason, "taking an alarm out of service")
        self.shelved_until.pop(slot, None)
        lvl = int(self.condition[slot])
        return self._t(slot, ts, "remove", S.OUT_OF_SERVICE, lvl, lvl, user=user, reason=reason)

    def return_to_service(self, slot: int, user: str, ts: int) -> Transition:
        """Back in service after maintenance."""
        if self.state[slot] != S.OUT_OF_SERVICE:
            raise InvalidTransitionError(f"alarm {slot} is not out of service")
        _require(user, "return", "returning an alarm to service")
        lvl = int(self.condition[slot])
        return self._t(slot, ts, "return", self._resolved(slot), lvl, lvl, user=user)

    def tick(self, now_ms: int) -> list[Transition]:
        """Clock-driven transitions: shelving expiry, re-alarm, end of chattering."""
        out = [self.unshelve(s, None, now_ms, "shelve_expired")
               for s, until in sorted(self.shelved_until.items()) if until <= now_ms]
        due = np.flatnonzero((self.state == S.ACK) & (self.re_alarm_ms > 0)
                             & (now_ms - self.since >= self.re_alarm_ms))
        for s in due.tolist():
            lvl, at = int(self.condition[s]), int(self.since[s] + self.re_alarm_ms[s])
            self.acked[s] = 0
            self._chatters(s, at)        # an annunciation like any other (EEMUA 191)
            out.append(self._t(s, at, "re-alarm", S.UNACK, lvl, lvl, float(self.value[s])))
        for s, last in sorted(self.chattering.items()):
            if now_ms - last >= CHATTER_WINDOW_MS:
                del self.chattering[s]
                out.append(self._end_chatter(s, last + CHATTER_WINDOW_MS))
        return out

    def _end_chatter(self, slot: int, ts: int) -> Transition:
        state = AlarmState(int(self.state[slot]))
        lvl = int(self.condition[slot])
        if lvl != 0 and abs(lvl) > abs(int(self.peak[slot])):
            self.peak[slot] = lvl       # reached while chattering: the peak still counts
        if state in HIDDEN_STATES:
            to = state
        elif lvl != 0:
            to = state if state in ACTIVE_STATES else S.UNACK
        else:
            to = self._after_clear(slot, state)
        return self._t(slot, ts, "chatter_end", to, lvl, lvl, float(self.value[slot]))

    def _after_clear(self, slot: int, state: AlarmState) -> AlarmState:
        """Where a condition returning to normal leaves an alarm: a latched unacknowledged
        alarm waits for its acknowledgement."""
        if state == S.UNACK:
            return S.RTN_UNACK if self.latched[slot] else S.NORMAL
        if state == S.ACK:
            return S.NORMAL
        return state


def _require(user: str, reason: str, what: str) -> None:
    if not user or not user.strip():
        raise InvalidTransitionError(f"{what} needs the person who does it")
    if not reason or not reason.strip():
        raise InvalidTransitionError(f"{what} needs a reason")
