"""Our MQTT connections with TLS and passwords, against a real Mosquitto that demands both."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from edge.mqtt import MqttSettings
from gateway.ingest import MessageBuffer, MqttIngest
from tests import services
from tests.waiting import wait_until


async def test_tls_and_password_connect_and_a_wrong_password_is_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with services.mosquitto_tls(tmp_path / "tls") as broker:
        good = MqttSettings(port=broker.tls_port, tls_ca=broker.ca, username=broker.username,
                            password=broker.password, client_id="sec-good")
        bad = good.model_copy(update={"password": None, "client_id": "sec-bad"})
        buffer = MessageBuffer(asyncio.get_running_loop())
        ok = MqttIngest(good, ["mhs/v1/+/+/readings"], buffer)
        refused = MqttIngest(bad, ["mhs/v1/+/+/readings"], buffer)
        with caplog.at_level(logging.ERROR, logger="gateway.ingest"):
            ok.start()
            refused.start()
            try:
                await wait_until(ok.subscribed.is_set, 15)
                # paho retries with backoff (1 s, then longer): wait for a second refusal
                await wait_until(lambda: refused.connect_failures >= 2, 15)
            finally:
                ok.stop()
                refused.stop()
    assert not refused.connected.is_set()
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1, errors          # the same refusal is logged once, not per retry
    assert "refused the connection" in errors[0] and "(TLS)" in errors[0]
    assert "HAZGW_MQTT__PASSWORD" in errors[0]
