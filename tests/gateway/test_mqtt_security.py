"""Our MQTT connections with TLS and passwords, against a real Mosquitto that demands both."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from edge.mqtt import MqttSettings, MqttUplink
from gateway.stream.ingest import MessageBuffer, MqttIngest
from tests import services
from tests.waiting import wait_until

# the security suite (pytest -m security), item 1. TLS and passwords on the broker
pytestmark = pytest.mark.security


async def test_tls_and_password_connect_and_a_wrong_password_is_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with services.mosquitto_tls(tmp_path / "tls") as broker:
        good = MqttSettings(port=broker.tls_port, tls_ca=broker.ca, username=broker.username,
                            password=broker.password, client_id="sec-good")
        bad = good.model_copy(update={"password": SecretStr("wrong"), "client_id": "sec-bad",
                                      "reconnect_max_s": 2})
        buffer = MessageBuffer(asyncio.get_running_loop())
        ok = MqttIngest(good, ["mhs/v1/+/+/readings"], buffer)
        refused = MqttIngest(bad, ["mhs/v1/+/+/readings"], buffer)
        with caplog.at_level(logging.ERROR):
            ok.start()
            refused.start()
            uplink = MqttUplink(bad.model_copy(update={"client_id": "sec-bad-edge"}))
            try:
                await wait_until(ok.subscribed.is_set, 15)
                # paho retries with backoff (1 s, then up to 2 s): wait for a third refusal
                await wait_until(lambda: refused.refusals.count >= 3, 15)
                await wait_until(lambda: uplink.refusals.count >= 3, 15)
            finally:
                ok.stop()
                refused.stop()
                await uplink.close(timeout_s=0)
    assert not refused.connected.is_set() and not uplink.is_connected
    errors = [r.getMessage() for r in caplog.records]
    # the same refusal is logged once per connection, not once per retry
    assert len(errors) == 2, errors
    # the two connections are refused on their own threads, in either order
    for who, error in zip(("ingest", "uplink"), sorted(errors), strict=True):
        assert error.startswith(f"{who}: broker 127.0.0.1:{broker.tls_port} (TLS) refused the "
                                "connection: Not authorized")
        assert "HAZGW_MQTT__PASSWORD" in error and "retrying every 1–2 s" in error
