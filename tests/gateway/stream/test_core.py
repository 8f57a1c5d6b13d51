"""The core's handling of what arrives: malformed, duplicate, gapped and unknown input."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import orjson

from edge import wire
from edge.clock import ScaledClock
from edge.mqtt import MqttSettings, MqttUplink
from gateway.app import gateway_session
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.settings import InfluxSettings, Settings
from gateway.site import load_site
from gateway.stream.core import Core, PointIndex
from tests.services import Server, influx_query, stored_readings
from tests.waiting import wait_until

TOPIC = "mhs/v1/91320582MA1W3K4X5R/edge-01/readings"
# the messages below are stamped 1000 + seq ms: the core's clock stands there, so that
# they lie inside the window of times it accepts
CLOCK = ScaledClock(2000)


def msg(seq: int, ids: list[str], vals: list[float], boot: int = 1, t0: int = 1000,
        ) -> tuple[str, bytes]:
    n = len(ids)
    return TOPIC, wire.encode("edge-01", boot, seq, ids, [t0 + seq] * n, vals, [0] * n)


async def test_bad_input_is_counted_and_dead_lettered_not_fatal(
        demo_config_path: Path) -> None:
    site = load_site(demo_config_path)
    async with BatchingWriter(NullSink()) as writer:
        core = Core(site, writer, clock=CLOCK)
        await core.handle([
            msg(0, ["GT101", "V101_level"], [1.0, 5.0]),
            (TOPIC, b"{not json"),
            (TOPIC, orjson.dumps({"v": 9})),
            (TOPIC, wire.encode("other-edge", 1, 1, ["GT101"], [1001], [1.0], [0])),
            ("mhs/v1/91320582MA1W3K4X5R/other-edge/readings", msg(1, ["GT101"], [1.0])[1]),
            msg(1, ["GT101", "NO_SUCH_POINT"], [2.0, 3.0]),
            msg(1, ["GT101"], [2.0]),           # duplicate of seq 1
            msg(5, ["GT101"], [60.0]),          # seq 2..4 missing
            (TOPIC.replace("/readings", "/stats"), b'{"v": 1, "edge": "edge-01"}'),
        ])
    s = core.stats
    assert s.malformed_messages == 5
    reasons = [d["reason"] for d in s.dead_letters]
    assert reasons[4] == "edge stats: missing 'boot'"
    assert reasons[0].startswith("not JSON: ")
    assert reasons[1] == "unsupported wire version 9 (this gateway reads v1)"
    assert "does not match the topic" in reasons[2]
    assert reasons[3] == "edge 'other-edge' is not in the site"
    assert [d["kind"] for d in s.dead_letters] == [
        "malformed", "malformed", "edge_mismatch", "unknown_edge", "malformed"]
    assert s.duplicate_messages == 1
    assert (core.sequences.gaps(), core.sequences.missing()) == (1, 3)
    assert s.unknown_point_readings == 1
    assert s.readings == 4
    assert s.alarm_events == 1  # GT101 jumped to 60 %LEL: straight to HH


async def test_a_new_boot_restarts_the_sequence(demo_config_path: Path) -> None:
    site = load_site(demo_config_path)
    async with BatchingWriter(NullSink()) as writer:
        core = Core(site, writer, clock=CLOCK)
        await core.handle([msg(0, ["GT101"], [1.0], boot=1), msg(1, ["GT101"], [1.0], boot=1),
                           msg(0, ["GT101"], [1.0], boot=2), msg(0, ["GT101"], [1.0], boot=1)])
    assert core.stats.readings == 3
    assert core.stats.duplicate_messages == 1 and core.sequences.gaps() == 0


async def test_malformed_payload_over_mqtt_does_not_stop_the_core(
        demo_config_path: Path, mosquitto_server: Server, influx_server: Server,
        influx_db: str) -> None:
    site = load_site(demo_config_path)
    mqtt = MqttSettings(port=mosquitto_server.port, client_id="core-malformed")
    settings = Settings(mqtt=mqtt, influx=InfluxSettings(url=influx_server.url,
                                                         database=influx_db))
    async with gateway_session(site, settings) as (core, ingest):
        await wait_until(ingest.subscribed.is_set)
        up = MqttUplink(mqtt.model_copy(update={"client_id": "edge-malformed"}))
        await up.publish(TOPIC, b"\xff\xfe garbage")
        await up.publish(*msg(0, ["GT101", "AT201"], [3.5, math.nan],
                              t0=int(time.time() * 1000)))
        await up.close()
        await wait_until(lambda: core.stats.messages >= 2)
    assert core.stats.malformed_messages == 1 and core.stats.readings == 2
    assert stored_readings(influx_server, influx_db) == 2


def test_point_index_remembers_id_lists_and_forgets_the_oldest(demo_config_path: Path) -> None:
    table = Core(load_site(demo_config_path), BatchingWriter(NullSink())).table
    index = PointIndex(table, max_lists=2, min_length=2)
    # a list with an unknown id is answered but not remembered: a flood of unknown ids
    # once kept 187 MB that never came back
    strange = ["GT101", "NO_SUCH_POINT", "V101_level"]
    assert index(strange).tolist() == [table.position["GT101"], -1,
                                       table.position["V101_level"]]
    assert len(index) == 0 and index(strange) is not index(strange)
    ids = ["GT101", "GT102", "V101_level", "AT201"]
    first = index(ids)
    assert first.tolist() == [table.position[p] for p in ids]
    # equal strings that are other objects (as each decoded message has): the same answer
    assert index(orjson.loads(orjson.dumps(ids))) is first
    other = index(ids[::-1])
    assert other.tolist() == first.tolist()[::-1] and len(index) == 2
    index(["GT101", "AT201"])
    assert len(index) == 2                      # bounded: the first list was forgotten
    assert index(ids) is not first and index(ids).tolist() == first.tolist()
    assert index(["AT201"]).tolist() == [table.position["AT201"]]   # short: looked up
    assert len(index) == 2


async def test_edge_stats_only_from_the_sites_edges_and_within_the_time_window(
        demo_config_path: Path) -> None:
    """Seen before: any client could write edge_stats of an edge that exists nowhere, at any
    time; now they are refused as readings are."""
    from edge.stats import EdgeStats, encode_stats, stats_topic
    site = load_site(demo_config_path)
    code = site.enterprise.code

    def stats(edge: str, ts: int) -> tuple[str, bytes]:
        return stats_topic(code, edge), encode_stats(EdgeStats(edge, 1, ts, {"polls_ok": 1},
                                                               {}))
    clock = ScaledClock(1_800_000_000_000)
    async with BatchingWriter(NullSink()) as writer:
        core = Core(site, writer, clock=clock)
        now = clock.now_ms()
        await core.handle([stats("edge-01", now), stats("intruder", now),
                           stats("edge-01", now + 3_600_000),
                           stats("edge-01", now - 8 * 86_400_000)])
    assert core.stats.edge_stats_messages == 1
    assert [d["kind"] for d in core.stats.dead_letters] == [
        "unknown_edge", "time_out_of_window", "time_out_of_window"]


async def test_an_mqtt_template_cannot_speak_for_points_another_edge_polls(
        demo_config_path: Path) -> None:
    """Seen before: a ``{N}`` template could address any point of the enterprise, including
    points another edge reads over Modbus; now it fills only its ``allow_points`` or points
    no Modbus device reads."""
    from edge.config import MqttSensor
    site = load_site(demo_config_path)
    edge = site.edges["edge-01"].model_copy(update={"modbus": {}, "mqtt_sensors": {}})

    def with_sensor(sensor: MqttSensor) -> Any:
        return site.model_copy(update={"edges": {
            **site.edges, "edge-m": edge.model_copy(update={"mqtt_sensors": {"gas": sensor}})}})
    topic = "mhs/v1/91320582MA1W3K4X5R/edge-m/readings"
    reading = (topic, wire.encode("edge-m", 1, 0, ["GT101"], [1500], [60.0], [0]))
    for sensor, kept in ((MqttSensor(topic="site/gas/+", point="{2}"), 0),
                         (MqttSensor(topic="site/gas/+", point="{2}", allow_points=["GT101"]),
                          1)):
        async with BatchingWriter(NullSink()) as writer:
            core = Core(with_sensor(sensor), writer, clock=CLOCK)
            await core.handle([reading])
        assert core.stats.readings == kept
        assert core.boundary.dropped["foreign_point"] == 1 - kept


async def test_a_quality_detail_reaches_influxdb_beside_its_reading(
        demo_config_path: Path, mosquitto_server: Server, influx_server: Server,
        influx_db: str) -> None:
    """A block the device refused (Modbus exception 2) arrives as bad readings with the
    code in "qd"; InfluxDB keeps it as quality_detail on those readings only."""
    site = load_site(demo_config_path)
    mqtt = MqttSettings(port=mosquitto_server.port, client_id="core-detail")
    settings = Settings(mqtt=mqtt, influx=InfluxSettings(url=influx_server.url,
                                                         database=influx_db))
    now = int(time.time() * 1000)
    async with gateway_session(site, settings) as (core, ingest):
        await wait_until(ingest.subscribed.is_set)
        up = MqttUplink(mqtt.model_copy(update={"client_id": "edge-detail"}))
        await up.publish(TOPIC, wire.encode("edge-01", 1, 0, ["GT101", "AT201"], [now, now],
                                            [3.5, math.nan], [0, 2], [0, 2]))
        await up.close()
        await wait_until(lambda: core.stats.readings >= 2)
    rows = influx_query(influx_server, influx_db,
                        "SELECT value, quality, quality_detail FROM reading GROUP BY point")
    got = {s["tags"]["point"]: [tuple(r[1:]) for r in s["values"]] for s in rows}
    assert got == {"GT101": [(3.5, 0, None)], "AT201": [(None, 2, 2)]}
