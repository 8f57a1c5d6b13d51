"""The escalation clock on a real database (SQLite and PostgreSQL), with injected time."""

from __future__ import annotations

import orjson
import pytest

from alerting.engine import AlarmEvent
from alerting.escalation import EscalationConfig
from gateway.alarms.escalation import Escalator
from gateway.store.models import Database

T0 = 1_800_000_000_000
S = 1000
CFG = EscalationConfig.model_validate({
    "default": {1: {"steps": [{"after_s": 0, "roles": ["operator"]},
                              {"after_s": 300, "roles": ["operational", "technical"]},
                              {"after_s": 900, "roles": ["main"]},
                              {"after_s": 1800, "roles": ["regulator"]}]}},
    "sources": {"dust": {1: {"steps": [{"after_s": 60, "roles": ["regulator"]}]}}}})


def event(alarm_id: str, ts: int, ev: str, state: str, source: str = "lpg_farm",
          user: str | None = None, priority: int = 1) -> AlarmEvent:
    point = alarm_id.split(":")[0]
    return AlarmEvent(alarm_id=alarm_id, alarm_type="process", point=point, source=source,
                      equipment="V101", console="control_room", kind="level", ts=ts, event=ev,
                      state=state, prev_state="normal", level=2, level_name="HH", prev_level=0,
                      gb50493_level=None, priority=priority, value=11.8, limit=11.5,
                      forecast_s=None, user=user, reason=None,
                      annunciated=ev in ("activate", "raise"), toxic=False)


def test_an_unacknowledged_hh_climbs_every_step_on_time_and_survives_a_restart(
        db: Database, database_url: str) -> None:
    esc = Escalator(db, CFG)
    esc.record([event("V101_level:process", T0, "activate", "unack")])
    assert [f.roles for f in esc.tick(T0)] == [("operator",)]
    assert esc.tick(T0 + 299 * S) == []
    assert [f.roles for f in esc.tick(T0 + 300 * S)] == [("operational", "technical")]
    assert esc.tick(T0 + 301 * S) == []                         # a step fires once
    # the gateway restarts: a new process, the same database
    db2 = Database(database_url)
    try:
        esc2 = Escalator(db2, CFG)
        assert esc2.tick(T0 + 899 * S) == []
        assert [f.roles for f in esc2.tick(T0 + 900 * S)] == [("main",)]
        fired = esc2.tick(T0 + 1800 * S)
        assert [(f.step, f.roles) for f in fired] == [(3, ("regulator",))]
        assert (fired[0].value, fired[0].limit, fired[0].level_name) == (11.8, 11.5, "HH")
        assert esc2.steps_fired("V101_level:process") == [
            (0, T0), (1, T0 + 300 * S), (2, T0 + 900 * S), (3, T0 + 1800 * S)]
    finally:
        db2.close()


def test_acknowledging_stops_the_climb_and_a_latched_return_does_not(db: Database) -> None:
    esc = Escalator(db, CFG)
    esc.record([event("GT101:process", T0, "activate", "unack"),
                event("AT201:process", T0, "activate", "unack")])
    esc.tick(T0)
    esc.record([event("GT101:process", T0 + 100 * S, "clear", "rtn_unack"),   # latched
                event("AT201:process", T0 + 100 * S, "acknowledge", "ack", user="op.liu")])
    fired = esc.tick(T0 + 300 * S)
    assert [(f.alarm_id, f.step) for f in fired] == [("GT101:process", 1)]
    esc.record([event("GT101:process", T0 + 400 * S, "acknowledge", "normal", user="op.liu")])
    assert esc.tick(T0 + 3600 * S) == []
    assert [(h.event, h.to_state, h.user) for h in esc.history("GT101:process")] == [
        ("activate", "unack", None), ("clear", "rtn_unack", None),
        ("acknowledge", "normal", "op.liu")]
    # a new occurrence of the same alarm climbs from its own start
    esc.record([event("GT101:process", T0 + 4000 * S, "activate", "unack")])
    assert [(f.step, f.annunciated_ms) for f in esc.tick(T0 + 4000 * S)] == \
        [(0, T0 + 4000 * S)]


def test_policies_by_source_and_priority(db: Database) -> None:
    esc = Escalator(db, CFG)
    esc.record([event("DC301_dp:process", T0, "activate", "unack", source="dust"),
                event("V102_level:process", T0, "activate", "unack", priority=3)])
    assert esc.tick(T0 + 59 * S) == []               # priority 3 has no policy
    assert [(f.alarm_id, f.roles) for f in esc.tick(T0 + 60 * S)] == \
        [("DC301_dp:process", ("regulator",))]


def test_policy_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="steps must have increasing after_s"):
        EscalationConfig.model_validate({"default": {1: {"steps": [
            {"after_s": 60, "roles": ["main"]}, {"after_s": 0, "roles": ["operator"]}]}}})
    with pytest.raises(ValueError, match=r"priorities are 1\.\.4"):
        EscalationConfig.model_validate({"default": {7: {"steps": [
            {"after_s": 0, "roles": ["main"]}]}}})


def test_events_made_again_after_a_crash_are_recorded_once(db: Database) -> None:
    """Messages redelivered after a crash are evaluated again from the saved state and make
    the same events; the history keeps each once and the occurrence is not reopened."""
    esc = Escalator(db, CFG)
    raised = event("GT101:process", T0, "activate", "unack")
    handled = event("GT101:process", T0 + 60 * S, "acknowledge", "ack", user="op.liu")
    esc.record([raised, handled])
    esc.record([raised, handled])                                   # the replay
    assert [(h.event, h.ts_ms) for h in esc.history("GT101:process")] == [
        ("activate", T0), ("acknowledge", T0 + 60 * S)]
    assert esc.tick(T0 + 3600 * S) == []                            # handled: no climb


def test_shelving_an_emergency_alarm_is_told_to_the_whole_chain_once(db: Database) -> None:
    from sqlalchemy import select

    from alerting.escalation import Contacts
    from gateway.store.models import Outbox
    contacts = Contacts.model_validate({"default": {
        "operator": [{"channel": "mqtt", "target": "ops/alarms"}],
        "regulator": [{"channel": "mqtt", "target": "reg/feed"}]}})
    esc = Escalator(db, CFG, contacts)
    esc.record([event("GT101:process", T0, "activate", "unack"),
                event("V101_level:process", T0, "activate", "unack", priority=2)])
    esc.tick(T0)
    esc.record([event("GT101:process", T0 + 10 * S, "shelve", "shelved", user="safety.wang"),
                event("V101_level:process", T0 + 10 * S, "shelve", "shelved", user="op.liu",
                      priority=2)])
    [notice] = esc.tick(T0 + 11 * S)              # the priority-2 shelving is not told
    assert (notice.alarm_id, notice.step, notice.roles) == (
        "GT101:process", -1, ("operator", "operational", "technical", "main", "regulator"))
    assert esc.tick(T0 + 12 * S) == []            # once
    with db.session() as s:
        told = [orjson.loads(o.payload) for o in s.execute(
            select(Outbox).where(Outbox.key.like("%/shelved/%"))).scalars()]
    assert sorted((m["kind"], m["by"], m["step"]) for m in told) == [
        ("shelved", "safety.wang", -1)] * 2        # the operator's and the regulator's


def test_enterprises_on_one_database_keep_their_own_alarms(db: Database) -> None:
    """Two enterprises with the same point ids on one database (a partitioned deployment):
    each has its own occurrence, history and steps, and its clock fires only its own.
    Seen before: the second enterprise's activation was taken for a replay of the first's
    (the same alarm id and time), and each clock fired every enterprise's alarms."""
    a, b = Escalator(db, CFG, enterprise="ENT-A"), Escalator(db, CFG, enterprise="ENT-B")
    a.record([event("V101_level:process", T0, "activate", "unack")])
    b.record([event("V101_level:process", T0, "activate", "unack")])
    assert [f.alarm_id for f in a.tick(T0)] == ["V101_level:process"]
    assert [f.alarm_id for f in b.tick(T0)] == ["V101_level:process"]    # its own, once
    assert a.tick(T0 + 1) == [] and b.tick(T0 + 1) == []
    a.record([event("V101_level:process", T0 + 5 * S, "acknowledge", "ack", user="op")])
    assert a.tick(T0 + 300 * S) == []                       # A's is handled ...
    assert [f.step for f in b.tick(T0 + 300 * S)] == [1]     # ... B's climbs on
    assert [e.event for e in a.history("V101_level:process")] == ["activate", "acknowledge"]
    assert [e.event for e in b.history("V101_level:process")] == ["activate"]
