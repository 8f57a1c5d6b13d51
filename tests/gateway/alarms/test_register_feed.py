"""Alarms that become register entries by themselves, on SQLite and PostgreSQL."""

from __future__ import annotations

from alerting.escalation import EscalationConfig
from alerting.register import RegisterRules
from gateway.alarms.escalation import Escalator
from gateway.alarms.register_feed import RegisterFeed
from gateway.store.models import Database
from gateway.store.register import Register
from tests.gateway.alarms.test_notify import T0, activation

S = 1000


def alarm(alarm_type: str, ts: int, point: str = "GT102", priority: int = 2):  # type: ignore[no-untyped-def]
    e = activation(ts)
    e.alarm_id, e.alarm_type, e.point, e.priority = f"{point}:{alarm_type}", alarm_type, point, \
        priority
    e.level_name = "fail" if alarm_type == "flatline" else "HH"
    return e


def test_an_integrity_alarm_opens_one_entry_with_evidence(db: Database) -> None:
    reg = Register(db)
    feed = RegisterFeed(reg, RegisterRules(), "E1", lambda p: [(T0 - 1000, 0.0), (T0, 0.0)])
    feed.on_events([alarm("flatline", T0)])
    feed.on_events([alarm("flatline", T0 + 600 * S)])          # still open: nothing new
    assert len(feed.created) == 1
    row = reg.get(feed.created[0])
    assert (row.source, row.level, row.point, row.state) == \
        ("integrity", "general", "GT102", "registered")
    assert "flatline" in row.title
    assert '"alarm_ids": ["GT102:flatline"]' in row.evidence
    assert '"samples": [[' in row.evidence


def test_recurrence_within_the_window(db: Database) -> None:
    reg = Register(db)
    feed = RegisterFeed(reg, RegisterRules(recurrences=3, recurrence_window_s=3600), "E1")
    for k in range(2):
        feed.on_events([alarm("process", T0 + k * 1000 * S, priority=1)])
    feed.on_events([alarm("process", T0 + 4000 * S, priority=1)])   # the first fell out
    assert feed.created == []
    feed.on_events([alarm("process", T0 + 4500 * S, priority=1)])
    assert len(feed.created) == 1
    row = reg.get(feed.created[0])
    assert (row.source, row.level) == ("alarm_recurrence", "major")
    assert row.title == "GT102:process activated 3 times in 1 h"


def test_an_alarm_unhandled_too_long_becomes_an_entry(db: Database) -> None:
    esc = Escalator(db, EscalationConfig())
    esc.record([activation(T0)])
    feed = RegisterFeed(Register(db), RegisterRules(unhandled_longer_than_s=3600), "E1")
    feed.tick(T0 + 3599 * S)
    assert feed.created == []
    feed.tick(T0 + 3600 * S)
    feed.tick(T0 + 7200 * S)
    assert len(feed.created) == 1
    row = Register(db).get(feed.created[0])
    assert (row.source, row.level, row.point) == ("alarm_duration", "major", "V101_level")


def test_an_overdue_entry_is_told_once_to_its_roles(db: Database) -> None:
    from sqlalchemy import select

    from alerting.escalation import Contacts
    from alerting.register import Five
    from gateway.store.models import Outbox

    reg = Register(db)
    contacts = Contacts.model_validate({"default": {
        "main": [{"channel": "email", "target": "chief@plant.example"}],
        "regulator": [{"channel": "mqtt", "target": "reg/E1/feed"}]}})
    eid = reg.create(enterprise="E1", hazard_source="farm", title="flange leak",
                     level="general", source="inspection", actor="insp",
                     five=Five(deadline_ms=T0), now_ms=T0 - 86_400 * S)
    feed = RegisterFeed(reg, RegisterRules(unhandled_longer_than_s=None), "E1",
                        contacts=contacts)
    feed.tick(T0)                       # due, not yet overdue
    feed.tick(T0 + 1)
    feed.tick(T0 + 3600 * S)            # and again later: nothing more
    with db.session() as s:
        rows = list(s.execute(select(Outbox).order_by(Outbox.id)).scalars())
    assert [(r.channel, r.target) for r in rows] == [("email", "chief@plant.example"),
                                                     ("mqtt", "reg/E1/feed")]
    assert f'"entry":{eid}' in rows[0].payload and '"kind":"register_overdue"' in rows[0].payload
