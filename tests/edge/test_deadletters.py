"""The edge publishes its MQTT sensors' last dead letters; ``hazgw dead-letters`` shows them."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import EdgeAgent
from edge.config import EdgeConfig, MqttSensor
from edge.deadletters import collect, format_doc
from edge.mqtt import MqttSettings, MqttUplink
from gateway import cli
from tests.services import Server
from tests.waiting import wait_until

ENTERPRISE = "91320582MA1W3K4X5R"        # the demo site's


async def test_dead_letters_reach_the_cli_by_edge_and_mapping(
        mosquitto_server: Server, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], demo_config_path: Path) -> None:
    port = mosquitto_server.port
    cfg = EdgeConfig(mqtt_sensors={"at1": MqttSensor(topic="plant/at1", point="AT1",
                                                     value_path="conc", ts_path="t")},
                     stats_interval_s=0.2, max_batch_delay_s=0.05)
    uplink = MqttUplink(MqttSettings(port=port, client_id="dl-edge"))
    agent = EdgeAgent(ENTERPRISE, "edge-dl", cfg, uplink,
                      MqttSettings(port=port, client_id="dl-sensors"))
    task = asyncio.create_task(agent.run())
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dl-device")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        await wait_until(lambda: agent.sensors is not None
                         and agent.sensors.conn.subscribed.is_set())
        pub.publish("plant/at1", b'{"conc": 1, "t": 1e19}', qos=1).wait_for_publish(5)
        await wait_until(lambda: agent.sensors is not None and agent.sensors.malformed == 1)
        got = await asyncio.to_thread(collect, MqttSettings(port=port, client_id="dl-cli"),
                                      ENTERPRISE, "edge-dl", 10)
        # the command, as a user runs it (its own connection; the site names the enterprise)
        monkeypatch.setenv("HAZGW_MQTT__PORT", str(port))
        monkeypatch.setenv("HAZGW_CONFIG", str(demo_config_path))
        rc = await asyncio.to_thread(cli.main, ["dead-letters", "--edge", "edge-dl",
                                                "--wait", "10"])
    finally:
        pub.disconnect()
        pub.loop_stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await uplink.close()
    assert got["edge-dl"]["malformed"] == 1
    [letter] = got["edge-dl"]["sensors"]["at1"]
    assert letter["topic"] == "plant/at1" and "not within 7 days back" in letter["reason"]
    lines = format_doc("edge-dl", got["edge-dl"])
    assert lines[0] == "edge edge-dl: 1 payload(s) dead-lettered so far"
    assert rc == 0
    out = capsys.readouterr().out
    assert "at1" in out and "not within 7 days back" in out and '{"conc": 1' in out


def test_no_dead_letters_is_one_line_and_status_1(
        mosquitto_server: Server, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], demo_config_path: Path) -> None:
    monkeypatch.setenv("HAZGW_MQTT__PORT", str(mosquitto_server.port))
    assert cli.main(["dead-letters", "--config", str(demo_config_path), "--wait", "0.5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("no dead letters from any edge")


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"sensors": {"a": "x"}}',
                                     b'{"sensors": {"a": [{"ts_ms": "soon", "sample": 5}]}}'])
def test_a_foreign_document_on_the_topic_is_shown_not_fatal(
        mosquitto_server: Server, payload: bytes) -> None:
    """Anyone may publish on the dead-letter topic: the reader shows what it got."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dl-foreign")
    pub.connect("127.0.0.1", mosquitto_server.port)
    pub.loop_start()
    try:
        def publish_soon() -> None:
            for _ in range(20):                   # until the reader has subscribed
                pub.publish(f"mhs/v1/{ENTERPRISE}/edge-x/dead-letters", payload, qos=1)
                time.sleep(0.1)

        t = threading.Thread(target=publish_soon)
        t.start()
        got = collect(MqttSettings(port=mosquitto_server.port, client_id="dl-reader"),
                      ENTERPRISE, "edge-x", 10)
        t.join()
    finally:
        pub.disconnect()
        pub.loop_stop()
    lines = format_doc("edge-x", got["edge-x"])
    assert lines and lines[0].startswith("edge edge-x:")
