"""The one MQTT connection type against a real Mosquitto: acknowledgement futures, a refused
connection said once, and subscriptions made again after the broker forgot them."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.mqtt import MqttConnection, MqttSettings
from tests import services
from tests.services import Server
from tests.waiting import wait_until


async def test_publish_acked_returns_on_the_puback_and_fails_fast_when_away(
        mosquitto_server: Server) -> None:
    conn = MqttConnection("t", MqttSettings(port=mosquitto_server.port, client_id="conn-ack"),
                          persistent=False)
    conn.start()
    try:
        await wait_until(conn.connected.is_set, 10)
        await asyncio.gather(*(conn.publish_acked(f"t/{i}", b"x", 5) for i in range(50)))
        assert conn.published == conn.acknowledged == 50
    finally:
        conn.stop()
    with pytest.raises(ConnectionError, match="not connected"):
        await conn.publish_acked("t/late", b"x", 1)


async def test_a_refused_connection_is_said_once(caplog: pytest.LogCaptureFixture,
                                                 tmp_path: Path) -> None:
    with services.mosquitto(tmp_path, "password_file /dev/null\n") as broker:
        # allow_anonymous true is overridden by a password file with no users: every
        # CONNECT is refused as "not authorised"
        conn = MqttConnection("t", MqttSettings(port=broker.port, client_id="conn-refused",
                                                username="nobody", password="x",
                                                reconnect_max_s=1), persistent=False)
        with caplog.at_level(logging.ERROR, logger="edge.mqtt"):
            conn.start()
            try:
                await wait_until(lambda: conn.refusals.count >= 3, 20)
            finally:
                conn.stop()
    said = [r for r in caplog.records if "refused the connection" in r.message]
    assert len(said) == 1 and "t: broker" in said[0].message
    assert not conn.connected.is_set()


async def test_subscriptions_are_made_again_when_the_broker_lost_them(
        tmp_path: Path) -> None:
    got: list[bytes] = []
    lock = threading.Lock()

    def on_message(msg: mqtt.MQTTMessage) -> None:
        with lock:
            got.append(bytes(msg.payload))

    with services.mosquitto(tmp_path / "mq") as broker:
        s = MqttSettings(port=broker.port, client_id="conn-resub", reconnect_max_s=1)
        conn = MqttConnection("t", s, persistent=True, subscriptions=[("r/#", 1)],
                              on_message=on_message)
        pub = MqttConnection("p", s.model_copy(update={"client_id": "conn-pub"}),
                             persistent=False)
        conn.start()
        pub.start()
        try:
            await wait_until(lambda: conn.subscribed.is_set() and pub.connected.is_set(), 10)
            await pub.publish_acked("r/1", b"before", 5)
            await wait_until(lambda: got == [b"before"], 10)
            # the broker restarts with its persistence gone: the session and its
            # subscription are forgotten, so only a new SUBSCRIBE brings messages again
            broker.stop()
            shutil.rmtree(tmp_path / "mq" / "mosquitto.db", ignore_errors=True)
            (tmp_path / "mq" / "mosquitto.db").unlink(missing_ok=True)
            await asyncio.to_thread(broker.start_again, services.MOSQUITTO_READY)
            await wait_until(lambda: conn.subscribed.is_set() and pub.connected.is_set(), 20)
            await pub.publish_acked("r/2", b"after", 5)
            await wait_until(lambda: got == [b"before", b"after"], 10)
        finally:
            pub.stop()
            conn.stop()


async def test_a_broker_that_is_not_running_is_said_once_with_the_retry_schedule(
        caplog: pytest.LogCaptureFixture) -> None:
    """Seen before: `hazgw run` and `hazgw edge` said nothing for 35 s."""
    from gateway.sim.ports import free_port

    conn = MqttConnection("ingest", MqttSettings(port=free_port(), client_id="conn-away",
                                                 reconnect_max_s=1), persistent=False)
    with caplog.at_level(logging.INFO, logger="edge.mqtt"):
        conn.start()
        try:
            await wait_until(lambda: conn.unreachable >= 3, 20)
        finally:
            conn.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "edge.mqtt"]
    assert len(said) == 1
    assert said[0].startswith("ingest: cannot reach the broker at 127.0.0.1:")
    assert "retrying every 1–1 s" in said[0]
