"""The REST API: each role's allowed and refused actions, bad requests, audit records; on a
real core and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent
from alerting.escalation import EscalationConfig
from edge.mqtt import MqttSettings
from gateway.alarms.escalation import Escalator
from gateway.api.app import create_app
from gateway.api.tokens import digest
from gateway.app import run_gateway
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.settings import ApiSettings, ApiUser, InfluxSettings, Settings
from gateway.sim.ports import free_port
from gateway.store.models import Database
from gateway.store.register import Register
from gateway.stream.core import Core
from tests.gateway.test_e2e import small_site
from tests.services import Server

# what clients present → who they are; the gateway is configured with the digests only
USERS = {"t-op": ApiUser(name="op.liu", role="operator"),
         "t-sm": ApiUser(name="safety.wang", role="safety_manager"),
         "t-reg": ApiUser(name="yjj.zhou", role="regulator"),
         "t-adm": ApiUser(name="admin", role="admin")}


def hashed(users: dict[str, ApiUser]) -> dict[str, ApiUser]:
    """The HAZGW_API__TOKENS form of ``users``: digests (short test tokens are accepted as
    digests only, as any token a person chose would be)."""
    return {f"sha256:{digest(t)}": u for t, u in users.items()}


TOKENS = hashed(USERS)


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with BatchingWriter(NullSink()) as writer:
        core = Core(small_site(1502), writer)
        history = Escalator(db, EscalationConfig())       # records every alarm event

        async def record(events: list[AlarmEvent]) -> None:
            history.record(events)
        core.alarm_sinks.append(record)
        # a combustible gas reading above L2 (50 %LEL): alarm G1:process, unacknowledged
        now = 1_800_000_000_000
        await core.process(ReadingBatch(core.table.index(np.array(["G1"])), np.array([now]),
                                        np.array([62.0]), np.zeros(1, np.uint8)))
        app = create_app(core, Register(db), TOKENS)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as c:
            yield c


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_tokens_are_required(client: httpx.AsyncClient) -> None:
    assert (await client.get("/alarms")).status_code == 401
    r = await client.get("/alarms", headers=as_("nope"))
    assert r.status_code == 401 and r.json()["detail"] == "a valid bearer token is required"
    assert (await client.get("/health")).json()["status"] == "ok"


@pytest.mark.parametrize("token", list(USERS))
async def test_every_role_reads_alarms_and_the_register(client: httpx.AsyncClient,
                                                        token: str) -> None:
    alarms = (await client.get("/alarms", headers=as_(token))).json()
    assert [(a["alarm_id"], a["state"], a["gb50493_level"]) for a in alarms] == \
        [("G1:process", "unack", 2)]
    for path in ("/register", "/register/overdue", "/register/supervised",
                 "/register/statistics", "/escalations"):
        assert (await client.get(path, headers=as_(token))).status_code == 200


@pytest.mark.parametrize(("token", "status"), [("t-op", 200), ("t-sm", 200), ("t-adm", 200),
                                               ("t-reg", 403)])
async def test_acknowledge_by_role(client: httpx.AsyncClient, db: Database, token: str,
                                   status: int) -> None:
    r = await client.post("/alarms/G1:process/acknowledge", json={"comment": "on my way"},
                          headers=as_(token))
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["detail"] == "role regulator may not acknowledge"
        return
    assert r.json()["state"] == "ack"
    with db.session() as s:
        row = s.execute(text("SELECT actor, action, subject FROM audit_log")).one()
    assert tuple(row) == (USERS[token].name, "alarm.acknowledge", "alarm/G1:process")
    again = await client.post("/alarms/G1:process/acknowledge", json={}, headers=as_(token))
    assert again.status_code == 409


@pytest.mark.parametrize(("token", "status"), [("t-op", 403), ("t-reg", 403), ("t-sm", 200),
                                               ("t-adm", 200)])
async def test_out_of_service_by_role(client: httpx.AsyncClient, token: str,
                                      status: int) -> None:
    r = await client.post("/alarms/G1:process/out-of-service",
                          json={"reason": "detector replaced, calibration pending"},
                          headers=as_(token))
    assert r.status_code == status, r.text


async def test_bad_alarm_requests_say_why(client: httpx.AsyncClient) -> None:
    r = await client.post("/alarms/NOPE:process/acknowledge", json={}, headers=as_("t-op"))
    assert r.status_code == 404 and "unknown alarm 'NOPE:process'" in r.json()["detail"]
    r = await client.post("/alarms/G1:process/shelve", json={"minutes": -5, "reason": "x"},
                          headers=as_("t-op"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "minutes"]
    r = await client.post("/alarms/G1:process/out-of-service", json={"reason": ""},
                          headers=as_("t-sm"))
    assert r.status_code == 422


async def test_register_roles_and_closed_loop_over_the_api(client: httpx.AsyncClient) -> None:
    entry = {"hazard_source": "farm", "title": "G1 L2 repeated", "level": "major"}
    assert (await client.post("/register", json=entry, headers=as_("t-reg"))).status_code == 403
    r = await client.post("/register", json=entry, headers=as_("t-op"))
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    path = f"/register/{eid}/transition"
    r = await client.post(path, json={"action": "start"}, headers=as_("t-op"))
    assert r.status_code == 403 and r.json()["detail"] == \
        "role operator may not register transition"
    r = await client.post(path, json={"action": "start"}, headers=as_("t-sm"))
    assert r.status_code == 409 and "missing: measures" in r.json()["detail"]
    five = {"measures": "m", "funds_cny": 5000, "responsible_person": "Li",
            "deadline_ms": 1, "contingency_plan": "EP"}
    r = await client.post(path, json={"action": "update_five", "five": five},
                          headers=as_("t-sm"))
    assert r.status_code == 200 and r.json()["funds_cny"] == 5000
    r = await client.post(path, json={"action": "start"}, headers=as_("t-sm"))
    assert r.json()["state"] == "rectifying"
    r = await client.post(path, json={"action": "teleport"}, headers=as_("t-sm"))
    assert r.status_code == 422
    r = await client.post(path, json={"action": "update_five", "five": {"budget": 1}},
                          headers=as_("t-sm"))
    assert r.status_code == 422
    assert (await client.post(f"/register/{eid}/supervise",
                              headers=as_("t-sm"))).status_code == 403
    r = await client.post(f"/register/{eid}/supervise", headers=as_("t-reg"))
    assert r.status_code == 200 and r.json()["listed_by"] == "yjj.zhou"
    r = await client.post("/register/999/transition", json={"action": "start"},
                          headers=as_("t-sm"))
    assert r.status_code == 404
    overdue = (await client.get("/register/overdue", headers=as_("t-reg"))).json()
    assert [e["id"] for e in overdue] == [eid]                 # deadline 1 ms after 1970
    stats = (await client.get("/register/statistics", headers=as_("t-reg"))).json()
    assert stats == [{"hazard_source": "farm", "level": "major", "state": "rectifying",
                      "count": 1}]


async def test_hazgw_run_serves_the_api_on_its_port(tmp_path: Path,
                                                    mosquitto_server: Server) -> None:
    port = free_port()
    settings = Settings(mqtt=MqttSettings(port=mosquitto_server.port, client_id="core-api"),
                        influx=InfluxSettings(kind="none"),
                        database_url=str(tmp_path / "api.sqlite3"),
                        api=ApiSettings(port=port, tokens=TOKENS))
    stop = asyncio.Event()
    task = asyncio.create_task(run_gateway(small_site(1502), settings, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            for _ in range(100):
                with contextlib.suppress(httpx.TransportError):
                    if (await c.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            assert (await c.get("/alarms")).status_code == 401
            r = await c.get("/alarms", headers=as_("t-reg"))
            assert r.status_code == 200 and r.json() == []
            assert (await c.get("/openapi.json")).json()["info"]["title"] == "hazgw"
    finally:
        stop.set()
        await task


async def test_escalation_state_lists_unhandled_occurrences_and_their_steps(
        client: httpx.AsyncClient, db: Database) -> None:
    from alerting.escalation import EscalationConfig
    from gateway.alarms.escalation import Escalator
    from tests.gateway.alarms.test_notify import T0, activation

    esc = Escalator(db, EscalationConfig.model_validate(
        {"default": {1: {"steps": [{"after_s": 0, "roles": ["operator"]}]}}}))
    esc.record([activation(T0)])
    esc.tick(T0)
    state = (await client.get("/escalations", headers=as_("t-reg"))).json()
    # the fixture's G1 alarm and V101_level, both priority 1: the first step fired for each
    step0 = [{"step": 0, "roles": ["operator"], "fired_ms": T0}]
    assert [(s["alarm_id"], s["steps"]) for s in state] == [
        ("G1:process", step0), ("V101_level:process", step0)]


async def test_daily_report_over_the_api(client: httpx.AsyncClient) -> None:
    r = await client.get("/report", params={"day": "2026-11-23"}, headers=as_("t-reg"))
    assert r.status_code == 200 and r.json()["points"]["total"] == 3
    r = await client.get("/report", params={"day": "2026-11-23", "format": "csv"},
                         headers=as_("t-reg"))
    assert r.headers["content-type"].startswith("text/csv") and "points.total,3" in r.text
    r = await client.get("/report", params={"day": "yesterday"}, headers=as_("t-reg"))
    assert r.status_code == 422 and "not a date" in r.json()["detail"]


@pytest.mark.parametrize(("token", "status"), [("t-op", 201), ("t-reg", 403)])
async def test_comments_by_role_and_the_alarm_history(client: httpx.AsyncClient, db: Database,
                                                      token: str, status: int) -> None:
    r = await client.post("/alarms/G1:process/comment", json={"text": "gas team on site"},
                          headers=as_(token))
    assert r.status_code == status, r.text
    if status == 201:
        with db.session() as s:
            row = s.execute(text("SELECT actor, action FROM audit_log")).one()
        assert tuple(row) == ("op.liu", "alarm.comment")
    r = await client.post("/alarms/NOPE:process/comment", json={"text": "x"},
                          headers=as_("t-op"))
    assert r.status_code == 404
    r = await client.get("/alarms/G1:process/history", headers=as_(token))
    assert r.status_code == 200
    assert [(h["event"], h["to_state"], h["level_name"]) for h in r.json()] == [
        ("activate", "unack", "HH")]
