"""Multi-level gas alarms through the whole kit (real Modbus edge, real core) in the shipped
``control_room`` scenario, where GT101 swings between L1 and L2 for two minutes: one
annunciation per level reached, one escalation occurrence, an acknowledgement at L2 that
holds, a row that shows L2 until reset, and notifications that tell one moment."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alerting.engine import ANNUNCIATING, AlarmEvent
from alerting.escalation import EscalationConfig
from alerting.lifecycle import AlarmState
from gateway.alarms.escalation import Escalator
from gateway.sim.kit import SimulatedSite, run_site
from gateway.store.models import Alarm, Database
from gateway.stream.core import Core

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "config" / "demo" / "plant.yaml"
SCENARIO = ROOT / "config" / "scenarios" / "control_room.yaml"
GT = "GT101:process"
CFG = EscalationConfig.model_validate({"default": {1: {"steps": [
    {"after_s": 0, "roles": ["operator"]}, {"after_s": 20, "roles": ["main"]}]}}})


def scenario_events(ack_at_l2: bool) -> tuple[list[AlarmEvent], list[tuple[int, int, int]]]:
    """GT101's events in the scenario; with ``ack_at_l2``, an operator acknowledges it on the
    first step where it stands unacknowledged at L2. Also (ts, shown, current) per step while
    it stands."""
    sim = SimulatedSite.from_files(DEMO, SCENARIO, speed=1000, duration_s=200)
    acks: list[AlarmEvent] = []
    rows: list[tuple[int, int, int]] = []

    def on_step(now: int, core: Core) -> None:
        e = core.engine
        slot = e.slot(GT)
        lc = e.lifecycle
        if lc.state[slot] != AlarmState.NORMAL:
            rows.append((now, lc.shown(slot), int(lc.condition[slot])))
        if ack_at_l2 and not acks and lc.state[slot] == AlarmState.UNACK \
                and lc.shown(slot) == 2:
            acks.append(e.acknowledge(GT, "operator-1", now))

    result = asyncio.run(run_site(sim, on_step=on_step))
    events = sorted([x for x in result.events if x.alarm_id == GT] + acks,
                    key=lambda x: x.ts)
    return events, rows


def announced(events: list[AlarmEvent]) -> list[tuple[str, str]]:
    return [(x.event, x.level_name) for x in events if x.annunciated and
            x.event in ANNUNCIATING]


def test_unacknowledged_swings_annunciate_each_level_once_and_show_l2(db: Database) -> None:
    events, rows = scenario_events(ack_at_l2=False)
    swings = [x for x in events if x.event == "change"]
    assert len(swings) >= 4, "the scenario no longer swings GT101 between L1 and L2"
    assert announced(events) == [("activate", "H"), ("raise", "HH")]
    assert all(not x.annunciated for x in swings)
    # from the raise to the reset the row and every event show HH; the current level beside
    raised = next(x.ts for x in events if x.event == "raise")
    assert {shown for ts, shown, _ in rows if ts >= raised} == {2}
    assert {cur for ts, _, cur in rows if ts >= raised} >= {1, 2}
    assert {x.level_name for x in events if x.ts >= raised} == {"HH"}
    esc = Escalator(db, CFG)
    esc.record(events)
    with db.session() as s:
        occurrences = s.query(Alarm).filter(Alarm.alarm_id == GT).all()
    assert len(occurrences) == 1
    [row] = occurrences
    raise_event = next(x for x in events if x.event == "raise")
    # the occurrence (and so every notification) tells the raise's moment, not L1's
    assert (row.level_name, row.value, row.limit) == ("HH", raise_event.value, 50.0)
    fired = esc.tick(events[-1].ts + 60_000)
    assert {(f.level_name, f.value, f.limit) for f in fired} == {
        ("HH", raise_event.value, 50.0)}


def test_an_acknowledgement_at_l2_holds_through_the_swings(db: Database) -> None:
    events, _ = scenario_events(ack_at_l2=True)
    [ack] = [x for x in events if x.event == "ack"]
    reset = next(x.ts for x in events if x.ts > ack.ts and x.state == "normal")
    standing = [x for x in events if ack.ts < x.ts < reset]
    assert sum(x.event == "change" for x in standing) >= 4, "no swings after the ack"
    assert announced(standing) == []            # nothing re-annunciated, nothing undone
    assert {(x.state, x.level_name) for x in standing} == {("ack", "HH")}
    # acknowledged and back to normal: reset; the leak's tail crossing L1 again (gas alarms
    # have no off-delay by default, domain.md §6.2) is a new alarm, a new occurrence
    assert announced([x for x in events if x.ts > reset])[:1] == [("activate", "H")]
    esc = Escalator(db, CFG)
    esc.record([x for x in events if x.ts <= reset])
    with db.session() as s:
        occurrences = s.query(Alarm).filter(Alarm.alarm_id == GT).all()
    assert [(o.handled_by, o.handled_ms) for o in occurrences] == [("operator-1", ack.ts)]
