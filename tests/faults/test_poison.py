"""Poison, oversize, foreign and spoofed messages mixed with real ones, live through a real
Mosquitto into a real InfluxDB 1.6.7: every real reading is stored exactly once, the L2 gas
reading among them raises its alarm, and every refusal is counted by its reason.

Seen before: in a burst of nested-column messages at ~980/s, 17 of 20 real messages were
lost and a real 60 %LEL reading raised no alarm (the whole step was dead-lettered); one
reading a year ahead cleared a stale alarm for good; a 66 MB message stalled the core 13 s."""

from __future__ import annotations

import json
import time

from edge import wire
from edge.mqtt import MqttSettings
from gateway.settings import InfluxSettings, Settings
from gateway.sim.ports import free_port
from tests.faults.clients import through_the_gateway
from tests.gateway.test_e2e import small_site
from tests.services import Server, influx_query

YEAR_MS = 365 * 86_400_000


async def test_poison_in_a_burst_takes_nothing_with_it(
        mosquitto_server: Server, influx_server: Server, influx_db: str) -> None:
    site = small_site(free_port())
    code = site.enterprise.code
    topic = wire.readings_topic(code, "edge-t")
    settings = Settings(mqtt=MqttSettings(port=mosquitto_server.port, client_id="poison-core"),
                        influx=InfluxSettings(url=influx_server.url, database=influx_db,
                                              flush_interval_s=0.1))
    now = int(time.time() * 1000)
    expected: set[tuple[str, int]] = set()
    messages: list[tuple[str, bytes]] = []
    for seq in range(20):
        ts = now - 20_000 + seq * 500
        ids, vals = ["L1", "P1", "G1"], [5.0, 1.0, 60.0 if seq == 12 else 2.0]
        tss = [ts, ts, ts]
        if seq == 7:                           # one reading a year ahead: dropped alone
            tss[1] = ts + YEAR_MS
        expected.update((p, t) for p, t in zip(ids, tss, strict=True) if t < now + 300_000)
        messages.append((topic, wire.encode("edge-t", 1, seq, ids, tss, vals, [0, 0, 0])))
        for bad_ts, bad_q in ([[1, 2]], [0]), ([ts], [[0, 0]]), ([[]], [0]):
            for _ in range(3):
                messages.append((topic, json.dumps(
                    {"v": 1, "edge": "edge-t", "boot": 1, "seq": 1000 + len(messages),
                     "ids": ["G1"], "ts": bad_ts, "val": [70.0], "q": bad_q}).encode()))
    messages.insert(30, (topic, b"x" * (5 * 1024 * 1024)))                       # oversize
    messages.insert(40, (wire.readings_topic(code, "intruder"),                   # unknown
                         wire.encode("intruder", 1, 0, ["G1"], [now], [45.0], [0])))
    messages.insert(50, (topic, wire.encode("edge-t", 1, 10**9, ["G1"], [now], [1.0],
                                            [0])))                                # seq jump
    core, stored = await through_the_gateway(mosquitto_server.port, "poison-edge", site, settings,
                                             messages, influx_server, influx_db)
    assert stored == expected
    alarms = influx_query(influx_server, influx_db,
                          "SELECT \"event\", \"level\", \"value\" FROM alarm_event WHERE "
                          "point = 'G1' AND alarm_type = 'process'")
    assert [r[1:] for r in alarms[0]["values"]][:1] == [["activate", "HH", 60.0]]
    b = core.boundary
    assert (b.refused["malformed"], b.refused["too_large"], b.refused["unknown_edge"],
            b.refused["seq_jump"]) == (20 * 9, 1, 1, 1)
    assert b.dropped["time_out_of_window"] == 1
    assert core.stats.accepted_messages == 20
