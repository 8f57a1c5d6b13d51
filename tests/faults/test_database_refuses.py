"""PostgreSQL refuses the gateway for a while (its connections killed, new ones refused):
the escalation clock, the outbox delivery and the alarm sink that records occurrences each
say it once, show it in their health, keep retrying, and catch up when the database is back.
Every notification due goes out exactly once.

Before supervision, ``Delivery.run`` ended on the first database exception without a word
and the shutdown's ``gather(return_exceptions=True)`` dropped it: nothing was delivered
after the blip."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest

from edge import wire
from edge.mqtt import MqttSettings
from gateway.app import gateway_session
from gateway.settings import InfluxSettings, Settings
from gateway.site import SiteConfig
from gateway.stream.core import Core
from tests.conftest import fresh_postgres
from tests.faults.clients import client, escalating_site, steps
from tests.services import Server
from tests.waiting import wait_until

FEED = "reg/feed/pg-blip"


def admit(url: str, allow: bool) -> None:
    """Let the database take connections, or refuse new ones and end the open ones."""
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))


def delivered(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE delivered_ms IS NOT NULL"
                           ).fetchone()
    return int(row[0]) if row else 0


async def test_outbox_and_escalation_survive_a_database_that_refuses_for_a_while(
        mosquitto_server: Server, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    policy = [{"after_s": 0, "roles": ["regulator"]}, {"after_s": 4, "roles": ["regulator"]}]
    site = escalating_site(policy, FEED)
    got: list[dict[str, Any]] = []
    port = mosquitto_server.port
    with client(port, "pg-blip-feed", FEED, got), client(port, "pg-blip-edge") as pub:
        core = await blip(site, mosquitto_server, pub, got, caplog)
    assert steps(got) == {("G1:process", 0): 1, ("G1:process", 1): 1,
                                  ("L1:process", 0): 1, ("L1:process", 1): 1}
    said = [r.getMessage() for r in caplog.records]
    for loop in ("escalation-clock", "outbox-delivery"):
        assert sum(m.startswith(f"{loop}: failed") for m in said) == 1, loop
        assert sum(m.startswith(f"{loop}: working again") for m in said) == 1, loop
        assert core.loops.by_name[loop].failures >= 2      # it kept trying, quietly


async def blip(site: SiteConfig, broker: Server, pub: mqtt.Client,
               got: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> Core:
    """Run the gateway through the database's absence; the core, once stopped."""
    topic = wire.readings_topic(site.enterprise.code, "edge-t")

    def reading(seq: int, point: str, value: float) -> None:
        payload = wire.encode("edge-t", 1, seq, [point], [int(time.time() * 1000)], [value],
                              [0])
        pub.publish(topic, payload, qos=1).wait_for_publish(5)

    with fresh_postgres() as url:
        settings = Settings(mqtt=MqttSettings(port=broker.port, client_id="pg-blip"),
                            influx=InfluxSettings(kind="none"), database_url=url)
        try:
            with caplog.at_level(logging.INFO):
                async with gateway_session(site, settings) as (core, ingest):
                    await wait_until(ingest.subscribed.is_set, 10)
                    reading(0, "G1", 62.0)                   # HH gas: step 0 at once
                    await wait_until(lambda: len(got) == 1, 15)
                    await wait_until(lambda: delivered(url) == 1, 10)
                    admit(url, False)                        # the database goes away
                    reading(1, "L1", 11.0)                   # a new alarm while it is away
                    loops = core.loops.by_name
                    await wait_until(lambda: loops["escalation-clock"].state == "failing"
                                     and loops["outbox-delivery"].state == "failing", 15)
                    await asyncio.sleep(5)                   # G1's step 1 falls due meanwhile
                    assert core.loops.failing()
                    admit(url, True)                         # ... and comes back
                    await wait_until(lambda: len(steps(got)) >= 4, 60)
                    await wait_until(lambda: not core.loops.failing(), 30)
                    await asyncio.sleep(2)                   # nothing more should come
        finally:
            admit(url, True)
    return core


async def test_a_database_away_at_start_delays_escalation_only(
        mosquitto_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Seen before: PostgreSQL unreachable at start was a 157-line traceback and exit 1."""
    site = escalating_site([{"after_s": 0, "roles": ["regulator"]}], FEED + "/start")
    got: list[dict[str, Any]] = []
    port = mosquitto_server.port
    with client(port, "pg-start-feed", FEED + "/start", got), \
            client(port, "pg-start-edge") as pub, fresh_postgres() as url:
        admit(url, False)
        settings = Settings(mqtt=MqttSettings(port=mosquitto_server.port,
                                              client_id="pg-start"),
                            influx=InfluxSettings(kind="none"), database_url=url)
        try:
            with caplog.at_level(logging.INFO):
                async with gateway_session(site, settings) as (core, ingest):
                    await wait_until(ingest.subscribed.is_set, 10)
                    payload = wire.encode("edge-t", 1, 0, ["G1"], [int(time.time() * 1000)],
                                          [62.0], [0])
                    pub.publish(wire.readings_topic(site.enterprise.code, "edge-t"), payload,
                                qos=1).wait_for_publish(5)
                    await wait_until(lambda: core.stats.alarm_events >= 1, 10)  # flows
                    await wait_until(
                        lambda: core.loops.by_name["escalation-clock"].state == "failing", 10)
                    assert got == []
                    admit(url, True)
                    await wait_until(lambda: steps(got) == {("G1:process", 0): 1}, 60)
        finally:
            admit(url, True)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len([m for m in said if m.startswith("escalation-clock: failed")]) == 1
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
