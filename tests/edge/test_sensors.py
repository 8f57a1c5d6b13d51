from __future__ import annotations

import asyncio
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import wire
from edge.agent import EdgeAgent
from edge.config import EdgeConfig, MqttSensor
from edge.mqtt import MqttSettings
from edge.sensors import PayloadError, parse_payload
from tests.services import Server

PLAIN = MqttSensor(topic="plant/gt1", point="GT1")
NESTED = MqttSensor(topic="plant/at1", point="AT1", value_path="data.conc", ts_path="data.t")
NOW = int(time.time() * 1000)


def j(doc: str) -> bytes:
    """A JSON payload with ``T`` standing for a time just before NOW (in ms)."""
    return doc.replace("T", str(NOW - 1000)).encode()


def test_plain_number_payload_takes_the_arrival_time() -> None:
    assert parse_payload(PLAIN, b" 12.5\n", now_ms=99) == (["GT1"], [12.5], 99, [])


def test_json_payload_by_field_path() -> None:
    assert parse_payload(NESTED, j('{"data": {"conc": 0.8, "t": T}}'), NOW) == \
        (["AT1"], [0.8], NOW - 1000, [])
    assert parse_payload(NESTED, j('{"data": {"conc": "0.8", "t": "T"}}'), NOW) == \
        (["AT1"], [0.8], NOW - 1000, [])


@pytest.mark.parametrize(("unit", "t"), [("s", (NOW - 1000) / 1000), ("ms", NOW - 1000),
                                         ("us", (NOW - 1000) * 1000),
                                         ("ns", (NOW - 1000) * 1_000_000)])
def test_sensor_times_in_the_mapping_s_unit(unit: str, t: float) -> None:
    sensor = NESTED.model_copy(update={"ts_unit": unit})
    _, _, ts, _ = parse_payload(sensor, f'{{"data": {{"conc": 1, "t": {t}}}}}'.encode(), NOW)
    assert ts == NOW - 1000
    # the same time read in ms would be 1970 (s) or centuries ahead (ns): refused
    if unit != "ms":
        with pytest.raises(PayloadError, match=r"wrong unit\? ts_unit is 'ms'"):
            parse_payload(NESTED, f'{{"data": {{"conc": 1, "t": {t}}}}}'.encode(), NOW)


MULTI = MqttSensor(topic="site/+/detector/+", fields={"{1}_{3}_CH4": "gas.ch4",
                                                     "{1}_{3}_H2S": "gas.h2s"}, ts_path="t")


def test_several_points_from_one_payload_named_by_topic_levels() -> None:
    assert parse_payload(MULTI, j('{"gas": {"ch4": 4.5, "h2s": 0.25}, "t": T}'), NOW,
                         "site/area2/detector/D7") == (["area2_D7_CH4", "area2_D7_H2S"],
                                                       [4.5, 0.25], NOW - 1000, [])


def test_a_payload_missing_one_field_delivers_the_others() -> None:
    points, values, _, missing = parse_payload(
        MULTI, j('{"gas": {"ch4": 4.5, "h2s": "n/a"}, "t": T}'), NOW, "site/a/detector/D")
    assert (points, values) == (["a_D_CH4"], [4.5])
    assert missing == ["gas.h2s is not a number: 'n/a'"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"topic": "a/b", "point": "P", "fields": {"Q": "x"}}, "either point"),
    ({"topic": "a/b"}, "either point"),
    ({"topic": "a/b", "fields": {"Q": "x"}, "value_path": "y"}, "value_path belongs to point"),
    ({"topic": "a/x+/b", "point": "P"}, r"\+ must be a whole level"),
    ({"topic": "a/#/b", "point": "P"}, "# the whole last level"),
    ({"topic": "a/+", "point": "P_{5}"}, "names topic level 5"),
    ({"topic": "a/+", "point": "bad id {1}"}, "not a valid point id"),
    ({"topic": "a/+", "point": "{1}", "allow_points": ["GT1", "G T"]},
     "allow_points: 'G T' is not a valid point id"),
])
def test_sensor_mappings_that_cannot_work_are_refused(fields: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MqttSensor.model_validate(fields)


@pytest.mark.parametrize(("sensor", "payload", "message"), [
    (PLAIN, b"high", "not a plain number"),
    (PLAIN, b"nan", "not finite"),
    (NESTED, b"{oops", "not JSON"),
    (NESTED, j('{"data": {"t": T}}'), "no field 'data.conc'"),
    (NESTED, j('{"data": {"conc": true, "t": T}}'), "data.conc is not a number"),
    # times that once raised OverflowError/ValueError in paho's thread and ended it
    (NESTED, b'{"data": {"conc": 1, "t": NaN}}', "not JSON"),
    (NESTED, b'{"data": {"conc": 1, "t": "nan"}}', "data.t is not a usable time"),
    (NESTED, b'{"data": {"conc": 1, "t": "inf"}}', "data.t is not a usable time"),
    (NESTED, b'{"data": {"conc": 1, "t": 1e19}}', "not within 7 days back and 5 minutes"),
    (NESTED, b'{"data": {"conc": 1, "t": -5}}', "not within 7 days back and 5 minutes"),
    (NESTED, b'{"data": {"conc": 1, "t": 1700000000000}}', "not within 7 days back"),
])
def test_unusable_payloads_say_why(sensor: MqttSensor, payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_payload(sensor, payload, NOW)


class ListUplink:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        if topic.endswith("/readings"):
            self.payloads.append(payload)

    async def close(self) -> None:
        pass


async def test_sensor_readings_reach_the_wire_and_bad_ones_are_dead_lettered(
        mosquitto_server: Server) -> None:
    cfg = EdgeConfig(mqtt_sensors={"gt1": PLAIN, "at1": NESTED, "multi": MULTI},
                    max_batch_delay_s=0.05)
    uplink = ListUplink()
    broker = MqttSettings(port=mosquitto_server.port, client_id="edge-sensors-test")
    runner = EdgeAgent("E", "edge-s", cfg, uplink, broker)
    task = asyncio.create_task(runner.run())
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sensor-device")
    pub.connect("127.0.0.1", mosquitto_server.port)
    pub.loop_start()
    try:
        for _ in range(100):  # wait for the edge's subscription (bounded)
            await asyncio.sleep(0.05)
            if runner.sensors is not None and runner.sensors.conn.subscribed.is_set():
                break
        await asyncio.sleep(0.2)
        # a time beyond int64 first: it once ended paho's thread and every sensor with it
        infos = [pub.publish("plant/at1", b'{"data": {"conc": 9.9, "t": 1e19}}', qos=1),
                 pub.publish("plant/gt1", b"3.5", qos=1),
                 pub.publish("plant/at1", j('{"data": {"conc": 0.4, "t": T}}'), qos=1),
                 pub.publish("plant/at1", b"not json", qos=1),
                 pub.publish("site/north/detector/D1", j('{"gas": {"ch4": 2, "h2s": 0}, '
                                                         '"t": T}'), qos=1)]
        for info in infos:
            info.wait_for_publish(5)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if runner.readings_published >= 4 and runner.sensors.malformed >= 2:  # type: ignore[union-attr]
                break
    finally:
        pub.disconnect()
        pub.loop_stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    got = {}
    for p in uplink.payloads:
        wb = wire.decode(p)
        got.update({i: (v, t) for i, v, t in zip(wb.ids, wb.value.tolist(),
                                                 wb.ts_ms.tolist(), strict=True)})
    assert got["GT1"][0] == 3.5
    assert got["AT1"] == (0.4, NOW - 1000)
    assert got["north_D1_CH4"] == (2.0, NOW - 1000) and got["north_D1_H2S"] == (0.0, NOW - 1000)
    assert runner.sensors is not None and runner.sensors.malformed == 2
    kept = [d["reason"] for d in runner.sensors.dead_letters["at1"]]
    assert kept[0].startswith("data.t 1e+19 (ms) is not within 7 days back")
    assert kept[1].startswith("payload is not JSON")


def test_a_template_fills_only_the_points_its_mapping_allows() -> None:
    """Seen before: a {N} template could address any point of the enterprise."""
    s = MqttSensor(topic="site/gas/+/state", point="{2}", allow_points=["GT7", "GT8"])
    assert parse_payload(s, b"3.5", NOW, "site/gas/GT7/state")[0] == ["GT7"]
    with pytest.raises(PayloadError, match=r"names point\(s\) GT101 that this mapping may not "
                                           r"fill"):
        parse_payload(s, b"3.5", NOW, "site/gas/GT101/state")
