"""Alarm events leave the gateway on MQTT (documented JSON) and land in InfluxDB, with the
alarm-system health metrics beside them."""

from __future__ import annotations

import math
import time

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import wire
from edge.mqtt import MqttSettings, MqttUplink
from gateway.alarms.publisher import alarms_topic
from gateway.app import gateway_session
from gateway.settings import InfluxSettings, Settings
from gateway.site import load_site
from tests.services import Server, influx_query
from tests.waiting import wait_until

ENT = "91320582MA1W3K4X5R"


async def test_gas_alarm_is_published_as_json_and_written(
        demo_config_path: object, mosquitto_server: Server, influx_server: Server,
        influx_db: str) -> None:
    site = load_site(str(demo_config_path))
    got: list[dict[str, object]] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="regulator-feed")
    sub.on_message = lambda c, u, m: got.append(orjson.loads(m.payload))
    sub.connect("127.0.0.1", mosquitto_server.port)
    sub.subscribe(alarms_topic(ENT), qos=1)
    sub.loop_start()
    mq = MqttSettings(port=mosquitto_server.port, client_id="core-alarms-test")
    settings = Settings(mqtt=mq, influx=InfluxSettings(url=influx_server.url,
                                                       database=influx_db))
    try:
        async with gateway_session(site, settings) as (core, ingest):
            await wait_until(ingest.subscribed.is_set)
            up = MqttUplink(mq.model_copy(update={"client_id": "edge-alarms-test"}))
            topic = wire.readings_topic(ENT, "edge-01")
            t0 = int(time.time() * 1000)  # the alarm clock runs on wall time
            for seq, (gt, at) in enumerate([(3.0, 0.1), (30.0, 0.2), (55.0, 2.5), (2.0, 0.1)]):
                await up.publish(topic, wire.encode("edge-01", 1, seq, ["GT101", "AT201"],
                                                    [t0 + seq * 1000] * 2, [gt, at], [0, 0]))
            await up.close()
            await wait_until(lambda: len(got) >= 5)
            await core.acknowledge("AT201:process", "operator-7")
            await wait_until(lambda: len(got) >= 6)
    finally:
        sub.disconnect()
        sub.loop_stop()
    seen = [(m["alarm_id"], m["event"], m["state"], m["level_name"], m["gb50493_level"])
            for m in got]
    assert seen[:5] == [
        ("GT101:process", "activate", "unack", "H", 1),
        ("GT101:process", "raise", "unack", "HH", 2),
        ("AT201:process", "activate", "unack", "HH", 2),
        # gas alarms latch, showing the highest level reached until acknowledged
        ("GT101:process", "clear", "rtn_unack", "HH", 2),
        ("AT201:process", "clear", "rtn_unack", "HH", 2),
    ]
    ack = got[5]
    assert (ack["event"], ack["state"], ack["user"]) == ("ack", "normal", "operator-7")
    first = got[0]
    assert first["enterprise"] == ENT and first["source"] == "lpg_farm"
    assert first["priority_name"] == "high" and first["predictive"] is False
    assert math.isclose(float(first["value"]), 30.0) and first["limit"] == 25.0  # type: ignore[arg-type]
    assert got[2]["kind"] == "toxic_gas" and got[2]["priority_name"] == "emergency"
    rows = influx_query(influx_server, influx_db,
                        "SELECT count(level_code) FROM alarm_event WHERE alarm_type = 'process'")
    assert rows[0]["values"][0][1] == 6
    health = influx_query(influx_server, influx_db,
                          "SELECT last(annunciated_total), last(alarms_rtn_unack) "
                          "FROM alarm_health WHERE console = 'control_room'")
    # three annunciations (clears are not); the acknowledged AT201 left rtn_unack
    assert health[0]["values"][0][1:] == [3, 1]
