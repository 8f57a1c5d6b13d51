"""One time base: under ``HAZGW_CLOCK`` at speed 20, every timestamp the gateway stores — in
InfluxDB (alarm events, self-metrics, dashboard status) and in the database (alarm history,
occurrences, escalation steps, outbox, audit log) — is on the simulated clock, an operator's
acknowledgement sorts after the alarm it acknowledges, and escalation steps fire at their
simulated offsets.

The simulated clock starts 30 days before the wall clock, so a single timestamp taken from
the wall lands outside the simulated window and fails the test."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from edge import wire
from edge.clock import ScaledClock
from edge.mqtt import MqttSettings, MqttUplink
from gateway.app import run_gateway
from gateway.settings import ApiSettings, ApiUser, InfluxSettings, Settings
from gateway.sim.ports import free_port
from gateway.site import SiteConfig, parse_site
from gateway.store.models import Database
from tests.gateway.api.test_api import hashed
from tests.gateway.test_e2e import small_site
from tests.services import Server, influx_query

SPEED = 20.0
STEP_S = 60            # the second escalation step, in simulated seconds
DAY_MS = 86_400_000


def escalating_site() -> SiteConfig:
    doc = small_site(free_port()).model_dump(mode="json", exclude_none=True)
    doc["edges"] = {}
    doc["escalation"] = {"default": {1: {"steps": [
        {"after_s": 0, "roles": ["operator"]}, {"after_s": STEP_S, "roles": ["main"]}]}}}
    doc["contacts"] = {"default": {"operator": [{"channel": "mqtt", "target": "ops/t/alarms"}],
                                   "main": [{"channel": "mqtt", "target": "ops/t/main"}]}}
    return parse_site(doc)


async def test_every_stored_timestamp_is_on_the_simulated_clock(
        mosquitto_server: Server, influx_server: Server, influx_db: str,
        tmp_path: Path) -> None:
    site = escalating_site()
    clock = ScaledClock(int(time.time() * 1000) - 30 * DAY_MS, SPEED)
    port, db_url = free_port(), str(tmp_path / "one-clock.sqlite3")
    settings = Settings(
        clock=clock.spec(), database_url=db_url,
        mqtt=MqttSettings(port=mosquitto_server.port, client_id="one-clock"),
        influx=InfluxSettings(url=influx_server.url, database=influx_db, flush_interval_s=0.1),
        api=ApiSettings(port=port, tokens=hashed({"t": ApiUser(name="op.liu",
                                                                  role="operator")})))
    start_ms = clock.now_ms()
    stop = asyncio.Event()
    gw = asyncio.create_task(run_gateway(site, settings, stop, status_every_s=0.5))
    auth = {"Authorization": "Bearer t"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:
            async def alarms() -> list[dict[str, object]]:
                try:
                    r = await api.get("/alarms", headers=auth)
                except httpx.TransportError:
                    return []
                return list(r.json()) if r.status_code == 200 else []

            for _ in range(200):                       # bounded: 20 s, until it serves
                try:
                    if (await api.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)                   # ingest subscribed
            up = MqttUplink(MqttSettings(port=mosquitto_server.port, client_id="one-clock-e"))
            t_reading = clock.now_ms()
            await up.publish(wire.readings_topic(site.enterprise.code, "edge-t"),
                             wire.encode("edge-t", 1, 0, ["G1"], [t_reading], [62.0], [0]))
            await up.close()
            def gas(rows: list[dict[str, object]]) -> list[object]:
                return [a["level_name"] for a in rows if a["alarm_id"] == "G1:process"]
            for _ in range(200):                       # bounded: 20 s
                if gas(await alarms()):
                    break
                await asyncio.sleep(0.1)
            assert gas(await alarms()) == ["HH"]

            async def steps() -> list[int]:
                r = (await api.get("/escalations", headers=auth)).json()
                return [s["step"] for o in r if o["alarm_id"] == "G1:process"
                        for s in o["steps"]]
            # the second step is due 60 simulated seconds on: 3 real seconds at 20×
            for _ in range(300):                       # bounded: 30 s
                if len(await steps()) >= 2:
                    break
                await asyncio.sleep(0.1)
            assert await steps() == [0, 1]
            r = await api.post("/alarms/G1:process/acknowledge", headers=auth, json={})
            assert r.status_code == 200, r.text
            acked_ts = r.json()["ts"]
        await asyncio.sleep(1.0)                       # a status and a stats line more
    finally:
        stop.set()
        await gw
    end_ms = clock.now_ms()

    def on_sim_clock(ts: int) -> bool:
        return start_ms - 1000 <= ts <= end_ms

    db = Database(db_url)
    try:
        with db.engine.connect() as c:
            queried = {
                "alarm_history": c.execute(text("SELECT ts_ms FROM alarm_history")).scalars(),
                "alarm": c.execute(text("SELECT annunciated_ms FROM alarm")).scalars(),
                "alarm handled": c.execute(text("SELECT handled_ms FROM alarm")).scalars(),
                "escalation": c.execute(text("SELECT fired_ms FROM escalation")).scalars(),
                "outbox": c.execute(text("SELECT created_ms FROM outbox")).scalars(),
                "delivery": c.execute(text("SELECT ts_ms FROM delivery_attempt")).scalars(),
                "audit_log": c.execute(text("SELECT ts_ms FROM audit_log")).scalars(),
            }
            stored: dict[str, list[int]] = {
                k: [int(x) for x in v if x is not None] for k, v in queried.items()}
            history = c.execute(text("SELECT event, ts_ms FROM alarm_history WHERE alarm_id "
                                     "= 'G1:process' ORDER BY id")).all()
            fired = c.execute(text("SELECT e.step, e.fired_ms - a.annunciated_ms FROM "
                                   "escalation e JOIN alarm a ON a.id = e.alarm_row "
                                   "WHERE a.alarm_id = 'G1:process' ORDER BY e.step")).all()
    finally:
        db.close()
    for m in ("alarm_event", "gateway_stats", "source_status", "alarm_health"):
        rows = influx_query(influx_server, influx_db, f"SELECT * FROM {m}")
        stored[f"influx {m}"] = [int(v[0]) for s in rows for v in s["values"]]
    assert all(stored.values()), {k: len(v) for k, v in stored.items()}
    off = {k: [t for t in v if not on_sim_clock(t)] for k, v in stored.items()}
    assert {k: v for k, v in off.items() if v} == {}
    events = [e for e, _ in history]
    assert events == ["activate", "ack"]
    assert history[1][1] == acked_ts >= history[0][1] == t_reading
    # step 0 at once, step 1 at 60 simulated seconds (the escalation clock ticks once a
    # simulated second; a few more seconds for the worker threads on a busy machine)
    assert fired[0][0] == 0 and 0 <= fired[0][1] <= 5_000
    assert fired[1][0] == 1 and STEP_S * 1000 <= fired[1][1] <= STEP_S * 1000 + 10_000
