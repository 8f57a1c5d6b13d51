"""Operator actions over the API on a real core and database (SQLite and PostgreSQL): the
shelving policy (who, how long, how often, only annunciated alarms), unshelve and return to
service, text checked at the boundary, and each action atomic with its audit record and
history row — a failed write leaves the alarm as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent
from alerting.escalation import EscalationConfig
from gateway.alarms.escalation import Escalator
from gateway.api.app import create_app
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.store.models import Database
from gateway.store.register import Register
from gateway.stream.core import Core
from tests.gateway.api.test_api import TOKENS, as_
from tests.gateway.test_e2e import small_site

T0 = 1_800_000_000_000


@dataclass
class Api:
    client: httpx.AsyncClient
    core: Core
    db: Database

    async def gas(self, value: float, ts: int) -> list[AlarmEvent]:
        return await self.core.process(ReadingBatch(
            self.core.table.index(np.array(["G1"])), np.array([ts]), np.array([value]),
            np.zeros(1, np.uint8)))

    def state(self, alarm_id: str = "G1:process") -> str:
        e = self.core.engine
        return e.describe(e.slot(alarm_id)).state

    def audit(self) -> list[tuple[str, str]]:
        with self.db.session() as s:
            return [tuple(r) for r in s.execute(text(
                "SELECT actor, action FROM audit_log ORDER BY id"))]

    def history(self, alarm_id: str = "G1:process") -> list[str]:
        with self.db.session() as s:
            return [r[0] for r in s.execute(text(
                "SELECT event FROM alarm_history WHERE alarm_id = :a ORDER BY id"),
                {"a": alarm_id})]


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    async with BatchingWriter(NullSink()) as writer:
        core = Core(small_site(1502), writer)
        history = Escalator(db, EscalationConfig(), enterprise=core.enterprise)   # as the service

        async def record(events: list[AlarmEvent]) -> None:
            history.record(events)
        core.alarm_sinks.append(record)
        app = create_app(core, Register(db), TOKENS)
        # a failed write answers 500 as a server would, instead of raising into the test
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            yield Api(c, core, db)


async def test_an_operator_may_not_shelve_an_l2_gas_alarm_a_safety_manager_may_for_a_shift(
        api: Api) -> None:
    await api.gas(62.0, T0)                              # L2: emergency, GB/T 50493 level 2
    r = await api.client.post("/alarms/G1:process/shelve",
                              json={"minutes": 60, "reason": "detector under test"},
                              headers=as_("t-op"))
    assert r.status_code == 403, r.text
    assert "may not shelve a GB/T 50493 second-level alarm" in r.json()["detail"]
    assert api.state() == "unack" and api.audit() == []
    r = await api.client.post("/alarms/G1:process/shelve",
                              json={"minutes": 600, "reason": "detector under test"},
                              headers=as_("t-sm"))
    assert r.status_code == 403 and "at most 480 minutes" in r.json()["detail"]
    r = await api.client.post("/alarms/G1:process/shelve",
                              json={"minutes": 480, "reason": "detector under test"},
                              headers=as_("t-sm"))
    assert r.status_code == 200, r.text
    assert api.state() == "shelved"
    assert api.audit() == [("safety.wang", "alarm.shelve")]
    assert api.history() == ["activate", "shelve"]


async def test_only_an_annunciated_alarm_is_shelved(api: Api) -> None:
    r = await api.client.post("/alarms/G1:process/shelve",
                              json={"minutes": 60, "reason": "in advance"}, headers=as_("t-sm"))
    assert r.status_code == 409 and "not annunciated" in r.json()["detail"]
    assert api.state() == "normal" and api.audit() == []


async def test_a_shelved_alarm_that_worsens_is_annunciated_again(api: Api) -> None:
    await api.gas(30.0, T0)                              # L1: an operator may shelve it
    r = await api.client.post("/alarms/G1:process/shelve",
                              json={"minutes": 60, "reason": "known leak, crew on site"},
                              headers=as_("t-op"))
    assert r.status_code == 200, r.text
    [e] = await api.gas(62.0, T0 + 1000)
    assert (e.event, e.state, e.level_name, e.annunciated) == ("raise", "unack", "HH", True)


async def test_unshelve_and_return_to_service(api: Api) -> None:
    await api.gas(30.0, T0)
    await api.client.post("/alarms/G1:process/shelve",
                          json={"minutes": 60, "reason": "known leak"}, headers=as_("t-op"))
    r = await api.client.post("/alarms/G1:process/unshelve", headers=as_("t-op"))
    assert r.status_code == 200 and r.json()["state"] == "unack"
    assert (await api.client.post("/alarms/G1:process/unshelve",
                                  headers=as_("t-op"))).status_code == 409
    r = await api.client.post("/alarms/G1:process/out-of-service",
                              json={"reason": "detector replaced"}, headers=as_("t-sm"))
    assert r.status_code == 200
    assert (await api.client.post("/alarms/G1:process/return-to-service",
                                  headers=as_("t-op"))).status_code == 403
    r = await api.client.post("/alarms/G1:process/return-to-service", headers=as_("t-sm"))
    assert r.status_code == 200 and r.json()["state"] == "unack"
    assert [a for _, a in api.audit()] == ["alarm.shelve", "alarm.unshelve",
                                           "alarm.out_of_service", "alarm.return_to_service"]
    assert api.history() == ["activate", "shelve", "unshelve", "remove", "return"]


async def test_shelving_one_alarm_is_capped_per_day(api: Api) -> None:
    await api.gas(30.0, T0)
    for _ in range(3):
        r = await api.client.post("/alarms/G1:process/shelve",
                                  json={"minutes": 5, "reason": "nuisance"}, headers=as_("t-op"))
        assert r.status_code == 200, r.text
        await api.client.post("/alarms/G1:process/unshelve", headers=as_("t-op"))
    r = await api.client.post("/alarms/G1:process/shelve",
                              json={"minutes": 5, "reason": "nuisance"}, headers=as_("t-op"))
    assert r.status_code == 403 and "already shelved 3 times today" in r.json()["detail"]
    assert api.state() == "unack"


@pytest.mark.parametrize("reason", ["valve\x00fault", "  ", "x" * 501, "a\x1b[31mred"])
async def test_bad_text_is_refused_before_anything_changes(api: Api, reason: str) -> None:
    await api.gas(30.0, T0)
    r = await api.client.post("/alarms/G1:process/shelve",
                              json={"minutes": 5, "reason": reason}, headers=as_("t-op"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "reason"]
    r = await api.client.post("/alarms/G1:process/shelve", headers=as_("t-op") | {
        "Content-Type": "application/json"}, content=b'{"minutes": NaN, "reason": "x"}')
    assert r.status_code == 422
    assert api.state() == "unack" and api.audit() == [] and api.history() == ["activate"]


async def test_an_action_whose_record_cannot_be_written_does_not_happen(api: Api) -> None:
    """The audit table is gone (a real failing write, on either database): the acknowledgement
    answers 500 and the alarm is still unacknowledged, with no history row; once the table is
    back the same acknowledgement goes through."""
    await api.gas(62.0, T0)
    with api.db.session.begin() as s:
        s.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
    r = await api.client.post("/alarms/G1:process/acknowledge", json={}, headers=as_("t-op"))
    assert r.status_code == 500
    assert api.state() == "unack" and api.history() == ["activate"]
    with api.db.session.begin() as s:
        s.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
    r = await api.client.post("/alarms/G1:process/acknowledge", json={}, headers=as_("t-op"))
    assert r.status_code == 200 and r.json()["state"] == "ack"
    assert api.history() == ["activate", "ack"] and api.audit() == [("op.liu",
                                                                    "alarm.acknowledge")]
