"""Every transition of the ISA-18.2 state table (alerting/lifecycle.py docstring)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from alerting.conditions import Changes
from alerting.lifecycle import (
    CHATTER_WINDOW_MS,
    AlarmState,
    InvalidTransitionError,
    Lifecycle,
    Transition,
)

S = AlarmState


def lc(latched: bool = False, re_alarm_ms: int = 0) -> Lifecycle:
    return Lifecycle(np.array([latched]), np.array([re_alarm_ms], np.int64))


def cond(life: Lifecycle, level: int, ts: int) -> list[Transition]:
    return life.apply(Changes(np.array([0], np.int64), np.array([ts], np.int64),
                              np.array([level], np.int8), np.array([1.0]), np.array([np.nan]),
                              np.array([np.nan])))


def put(life: Lifecycle, state: AlarmState, level: int = 0, peak: int | None = None,
        acked: int | None = None) -> Lifecycle:
    """Force a starting state (the table tests start from every state); by default the alarm
    peaked at its current level and, when acknowledged, was acknowledged at it."""
    life.state[0] = state
    life.condition[0] = level
    life.peak[0] = level if peak is None else peak
    life.acked[0] = (abs(level) if state == S.ACK else 0) if acked is None else acked
    if state == S.SHELVED:
        life.shelved_until[0] = 10_000
    return life


HIDDEN = (S.SHELVED, S.SUPPRESSED, S.OUT_OF_SERVICE)
# (start state, condition before, peak before (None: = before), acknowledged level (None:
#  = before if ACK), latched, new condition level, event, end state, annunciated)
CONDITION_TABLE = [
    (S.NORMAL, 0, None, None, False, 1, "activate", S.UNACK, True),
    (S.UNACK, 1, None, None, False, 2, "raise", S.UNACK, True),
    (S.UNACK, 2, None, None, False, 1, "change", S.UNACK, False),
    (S.UNACK, 1, 2, None, False, 2, "change", S.UNACK, False),    # L2 → L1 → L2 unacked
    (S.UNACK, 1, None, None, False, 0, "clear", S.NORMAL, True),
    (S.UNACK, 1, None, None, True, 0, "clear", S.RTN_UNACK, True),
    (S.ACK, 1, None, None, False, 2, "raise", S.UNACK, True),
    (S.ACK, 1, None, None, False, -1, "raise", S.UNACK, True),    # the other side: new
    (S.ACK, 2, None, None, False, 1, "change", S.ACK, False),
    (S.ACK, 1, 2, 2, False, 2, "change", S.ACK, False),           # acked at L2: holds
    (S.ACK, 1, 2, 2, True, 2, "change", S.ACK, False),
    (S.ACK, 2, 2, 1, False, 2, "raise", S.UNACK, True),           # never acked at L2... yet
    (S.ACK, 1, None, None, True, 0, "clear", S.NORMAL, True),
    (S.RTN_UNACK, 0, 1, None, True, 1, "activate", S.UNACK, False),  # already standing
    (S.RTN_UNACK, 0, 1, None, True, 2, "raise", S.UNACK, True),
    (S.SHELVED, 0, 1, None, False, 1, "condition", S.SHELVED, False),
    (S.SHELVED, 1, None, None, False, 2, "raise", S.UNACK, True),  # worse than shelved at
    (S.SHELVED, 1, None, None, False, -1, "raise", S.UNACK, True),
    (S.SHELVED, 1, None, None, False, 0, "condition", S.SHELVED, False),
    (S.SHELVED, 0, 2, None, True, 1, "condition", S.SHELVED, False),
    (S.SUPPRESSED, 0, None, None, False, 2, "condition", S.SUPPRESSED, False),
    (S.OUT_OF_SERVICE, 0, None, None, False, 1, "condition", S.OUT_OF_SERVICE, False),
]


@pytest.mark.parametrize(("start", "before", "peak", "acked", "latched", "level", "event",
                          "end", "annunciated"), CONDITION_TABLE)
def test_condition_changes(start: AlarmState, before: int, peak: int | None,
                           acked: int | None, latched: bool, level: int, event: str,
                           end: AlarmState, annunciated: bool) -> None:
    life = put(lc(latched), start, before, peak, acked)
    [t] = cond(life, level, 100)
    assert (t.event, t.from_state, t.to_state, t.annunciated) == (event, start, end,
                                                                   annunciated)
    assert life.state[0] == end


ACTIONS: dict[str, Callable[[Lifecycle], Transition]] = {
    "ACK": lambda life: life.acknowledge(0, "op", 200, "seen"),
    "SHELVE": lambda life: life.shelve(0, "op", "maint", 900, 200),
    "UNSHELVE": lambda life: life.unshelve(0, "op", 200),
    "SUPPRESS": lambda life: life.suppress(0, "pump stopped", 200),
    "UNSUPPRESS": lambda life: life.unsuppress(0, 200),
    "REMOVE": lambda life: life.remove_from_service(0, "tech", "recalibration", 200),
    "RETURN": lambda life: life.return_to_service(0, "tech", 200),
}
ACK, SHELVE, UNSHELVE, SUPPRESS, UNSUPPRESS, REMOVE, RETURN = ACTIONS

# (start state, condition level, action, event, end state); None = refused
ACTION_TABLE = [
    (S.UNACK, 1, ACK, "ack", S.ACK),
    (S.RTN_UNACK, 0, ACK, "ack", S.NORMAL),
    (S.NORMAL, 0, ACK, None, S.NORMAL),
    (S.ACK, 1, ACK, None, S.ACK),
    (S.SHELVED, 1, ACK, None, S.SHELVED),
    (S.NORMAL, 0, SHELVE, None, S.NORMAL),              # only an annunciated alarm
    (S.UNACK, 1, SHELVE, "shelve", S.SHELVED),
    (S.ACK, 1, SHELVE, "shelve", S.SHELVED),
    (S.RTN_UNACK, 0, SHELVE, "shelve", S.SHELVED),
    (S.SHELVED, 0, SHELVE, None, S.SHELVED),
    (S.OUT_OF_SERVICE, 0, SHELVE, None, S.OUT_OF_SERVICE),
    (S.SHELVED, 1, UNSHELVE, "unshelve", S.UNACK),
    (S.SHELVED, 0, UNSHELVE, "unshelve", S.NORMAL),
    (S.NORMAL, 0, UNSHELVE, None, S.NORMAL),
    (S.NORMAL, 0, SUPPRESS, "suppress", S.SUPPRESSED),
    (S.ACK, 1, SUPPRESS, "suppress", S.SUPPRESSED),
    (S.SHELVED, 0, SUPPRESS, None, S.SHELVED),
    (S.SUPPRESSED, 1, UNSUPPRESS, "unsuppress", S.UNACK),
    (S.SUPPRESSED, 0, UNSUPPRESS, "unsuppress", S.NORMAL),
    (S.NORMAL, 0, UNSUPPRESS, None, S.NORMAL),
    (S.NORMAL, 0, REMOVE, "remove", S.OUT_OF_SERVICE),
    (S.UNACK, 2, REMOVE, "remove", S.OUT_OF_SERVICE),
    (S.SHELVED, 0, REMOVE, "remove", S.OUT_OF_SERVICE),
    (S.SUPPRESSED, 0, REMOVE, "remove", S.OUT_OF_SERVICE),
    (S.OUT_OF_SERVICE, 0, REMOVE, None, S.OUT_OF_SERVICE),
    (S.OUT_OF_SERVICE, 1, RETURN, "return", S.UNACK),
    (S.OUT_OF_SERVICE, 0, RETURN, "return", S.NORMAL),
    (S.NORMAL, 0, RETURN, None, S.NORMAL),
]


@pytest.mark.parametrize(("start", "level", "action", "event", "end"), ACTION_TABLE)
def test_operator_actions(start: AlarmState, level: int, action: str, event: str | None,
                          end: AlarmState) -> None:
    life = put(lc(), start, level)
    if event is None:
        with pytest.raises(InvalidTransitionError):
            ACTIONS[action](life)
    else:
        t = ACTIONS[action](life)
        assert (t.event, t.from_state, t.to_state, t.ts) == (event, start, end, 200)
    assert life.state[0] == end


def test_out_of_service_needs_a_person_and_a_reason() -> None:
    life = lc()
    with pytest.raises(InvalidTransitionError, match="needs the person"):
        life.remove_from_service(0, " ", "recalibration", 1)
    with pytest.raises(InvalidTransitionError, match="needs a reason"):
        life.remove_from_service(0, "tech", "", 1)
    assert life.state[0] == S.NORMAL
    t = life.remove_from_service(0, "tech", "recalibration", 1)
    assert (t.user, t.reason) == ("tech", "recalibration")


def test_shelving_expires_on_the_clock() -> None:
    life = put(lc(), S.UNACK, 1)
    life.shelve(0, "op", "nuisance while we fix the valve", until_ts=5_000, ts=1_000)
    assert life.tick(4_999) == []
    [t] = life.tick(5_000)
    assert (t.event, t.to_state) == ("shelve_expired", S.UNACK)
    with pytest.raises(InvalidTransitionError, match="in the future"):
        life.shelve(0, "op", "x", until_ts=10, ts=20)


def test_acknowledged_alarm_still_active_re_alarms() -> None:
    life = lc(re_alarm_ms=60_000)
    cond(life, 1, 1_000)
    life.acknowledge(0, "op", 2_000)
    assert life.tick(61_999) == []
    [t] = life.tick(70_000)
    assert (t.event, t.from_state, t.to_state, t.ts) == ("re-alarm", S.ACK, S.UNACK, 62_000)


def test_acknowledgement_at_l2_holds_through_l2_l1_l2_swings() -> None:
    """GB/T 50493 gas alarm flapping around its second limit: one annunciation per level
    reached, none after the acknowledgement at L2, and the latched level stays L2."""
    life = lc(latched=True)
    seen = cond(life, 1, 0) + cond(life, 2, 1_000) + cond(life, 1, 2_000)
    assert life.shown(0) == 2
    seen += [life.acknowledge(0, "op", 2_500)]
    for k in range(20):
        seen += cond(life, 2 if k % 2 == 0 else 1, 3_000 + k * 1_000)
    announced = [(t.event, t.level) for t in seen if t.annunciated]
    assert announced == [("activate", 1), ("raise", 2), ("ack", 1)]
    assert (life.state[0], life.shown(0)) == (S.ACK, 2)
    [clear] = cond(life, 0, 60_000)
    assert (clear.event, clear.to_state, clear.shown) == ("clear", S.NORMAL, 0)
    [again] = cond(life, 1, 61_000)            # after reset: a new occurrence
    assert (again.event, again.annunciated, again.shown) == ("activate", True, 1)


def test_latched_unacknowledged_alarm_shows_its_peak_until_reset() -> None:
    life = lc(latched=True)
    cond(life, 1, 0)
    cond(life, 2, 1_000)
    [down] = cond(life, 1, 2_000)
    assert (down.level, down.shown, down.to_state) == (1, 2, S.UNACK)
    [gone] = cond(life, 0, 3_000)
    assert (gone.shown, gone.to_state) == (2, S.RTN_UNACK)
    ack = life.acknowledge(0, "op", 4_000)
    assert (ack.to_state, ack.shown) == (S.NORMAL, 0)


def test_chattering_counts_raises_and_re_alarms_not_only_activations() -> None:
    """EEMUA 191: what chatters is what the operator hears; raise after raise counts."""
    life = lc()
    cond(life, 1, 0)
    cond(life, 2, 1_000)
    life.acknowledge(0, "op", 1_500)
    cond(life, 1, 2_000)
    cond(life, -1, 3_000)                       # to the other side: a third annunciation
    assert 0 in life.chattering


def test_chattering_is_announced_once_then_recorded_silently_until_quiet() -> None:
    life = lc()
    events = []
    for k in range(15):                      # a level switch flapping every 2 s
        events += cond(life, 1, k * 4_000)
        events += cond(life, 0, k * 4_000 + 2_000)
    shown = [(t.event, t.ts) for t in events if t.annunciated]
    assert shown == [("activate", 0), ("clear", 2_000), ("activate", 4_000),
                     ("clear", 6_000), ("chattering", 8_000)]
    assert sum(1 for t in events if not t.annunciated) == 25
    [end] = life.tick(56_000 + CHATTER_WINDOW_MS)
    assert (end.event, end.ts, end.to_state) == ("chatter_end", 116_000, S.NORMAL)


def test_chatter_end_is_found_by_a_later_change_without_a_tick() -> None:
    life = lc()
    for k in range(3):
        cond(life, 1, k * 1_000)
        cond(life, 0, k * 1_000 + 500)
    later = cond(life, 1, 200_000)
    assert [(t.event, t.ts) for t in later] == [("chatter_end", 62_000), ("activate", 200_000)]
