"""The whole path on real parts: simulated Modbus device → edge poller → Mosquitto → core →
InfluxDB 1.6.7."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np

from edge import wire
from edge.agent import EdgeAgent
from edge.mqtt import MqttSettings, MqttUplink
from edge.sim.simulator import Excursion, PlantModel, SimulatedDevice
from gateway.app import gateway_session
from gateway.settings import InfluxSettings, Settings
from gateway.sim.ports import free_port
from gateway.site import SiteConfig, parse_site
from tests.services import Server, influx_query
from tests.waiting import wait_until

PERSONS = {role: {"name": f"P {role}", "phone": "+86 138 0000 0000"}
           for role in ("main", "technical", "operational")}


def small_site(port: int) -> SiteConfig:
    return parse_site({
        "enterprise": {
            "code": "91320582MA1W3K4X5R", "name": "E2E Test Co.",
            "hazard_sources": {"farm": {
                "name": "farm", "unit_type": "storage", "exposed_population_500m": 10,
                "substances": [{"substance": "lpg", "quantity_t": 100}],
                "responsible_persons": PERSONS,
                "equipment": {"V1": {"kind": "tank", "points": {
                    "L1": {"kind": "level", "unit": "m", "range_low": 0, "range_high": 12,
                           "lo": 1, "hi": 10, "on_delay_s": 0, "off_delay_s": 0},
                    "P1": {"kind": "pressure", "unit": "MPa", "range_low": 0,
                           "range_high": 2.5, "hi": 1.6},
                    "G1": {"kind": "combustible_gas", "unit": "%LEL", "range_low": 0,
                           "range_high": 100, "hi": 25, "hihi": 50},
                }}}}}},
        "edges": {"edge-t": {"max_batch_readings": 50, "max_batch_delay_s": 0.1, "modbus": {
            "plc": {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.1,
                    "registers": {"L1": {"address": 0, "type": "float32"},
                                  "P1": {"address": 2, "type": "float32", "word_order": "CDAB"},
                                  "G1": {"table": "input", "address": 0, "type": "uint16",
                                         "scale": 0.1}}}}}},
    })


class RecordingUplink(MqttUplink):
    """The real MQTT uplink, keeping a copy of every payload it published."""

    def __init__(self, s: MqttSettings) -> None:
        super().__init__(s)
        self.payloads: list[bytes] = []

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        await super().publish(topic, payload)
        if topic.endswith("/readings"):
            self.payloads.append(payload)


async def test_modbus_to_influxdb_with_one_excursion(
        mosquitto_server: Server, influx_server: Server, influx_db: str) -> None:
    site = small_site(free_port())
    dev = site.edges["edge-t"].modbus["plc"]
    points = {pid: p for pid, (_, _, p) in site.enterprise.points().items()}
    # L1 sits at 5.5 m (mid-band) and makes one excursion to 11 m, above hi = 10 m.
    model = PlantModel(points, [Excursion("L1", start_s=1.0, rise_s=0.3, peak=11.0, hold_s=1.0,
                                          fall_s=0.3)])
    sim = SimulatedDevice(dev, model)
    await sim.start()
    run = uuid.uuid4().hex[:8]
    mqtt = MqttSettings(port=mosquitto_server.port, client_id=f"core-{run}")
    settings = Settings(mqtt=mqtt, influx=InfluxSettings(
        url=influx_server.url, database=influx_db, flush_interval_s=0.1))
    try:
        async with gateway_session(site, settings) as (core, ingest):
            await wait_until(ingest.subscribed.is_set, 10)
            uplink = RecordingUplink(mqtt.model_copy(update={"client_id": f"edge-{run}"}))
            edge = EdgeAgent(site.enterprise.code, "edge-t", site.edges["edge-t"], uplink)
            task = asyncio.create_task(edge.run())
            await asyncio.sleep(4.0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await uplink.close()
            published = edge.readings_published
            await wait_until(lambda: core.stats.readings >= published, 10)
    finally:
        await sim.stop()

    assert core.stats.malformed_messages == 0 and core.stats.duplicate_messages == 0
    assert core.stats.readings == published > 60
    sent = [wire.decode(p) for p in uplink.payloads]
    expected = sorted(
        (pid, int(ts), float(v))
        for wb in sent for pid, ts, v in zip(wb.ids, wb.ts_ms.tolist(),
                                              wb.value.tolist(), strict=True))
    rows = influx_query(influx_server, influx_db,
                        "SELECT value, point FROM reading GROUP BY point")
    stored = sorted((s["tags"]["point"], r[0], r[1]) for s in rows for r in s["values"])
    assert stored == expected
    assert not np.isnan([v for _, _, v in expected]).any()

    events = influx_query(influx_server, influx_db,
                          "SELECT point, event, state, level, \"limit\" FROM alarm_event")
    got = [tuple(r[1:]) for r in events[0]["values"]]
    assert got == [("L1", "activate", "unack", "H", 10.0),
                   ("L1", "clear", "normal", "normal", 10.0)]
