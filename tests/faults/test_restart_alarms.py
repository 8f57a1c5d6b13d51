"""Alarm state survives a restart of the gateway: an acknowledged alarm and a shelved one are
neither announced nor escalated again, and a return to normal after the restart is
announced once. Real Mosquitto; escalation to an MQTT feed; state on disk.

Seen before: every standing alarm announced again after a restart; an acknowledgement and a
60-minute shelve forgotten, both alarms escalated again up to the regulator."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from alerting.engine import AlarmEvent
from edge import wire
from edge.mqtt import MqttSettings
from gateway.app import gateway_session
from gateway.settings import InfluxSettings, Settings, StateSettings
from gateway.site import SiteConfig
from tests.faults.clients import client, escalating_site, steps
from tests.services import Server
from tests.waiting import wait_until

FEED = "reg/feed/restart"


async def test_acknowledged_and_shelved_alarms_stay_so_across_a_restart(
        mosquitto_server: Server, tmp_path: Path) -> None:
    policy = [{"after_s": 0, "roles": ["regulator"]}, {"after_s": 3, "roles": ["regulator"]}]
    site = escalating_site(policy, FEED)
    settings = Settings(mqtt=MqttSettings(port=mosquitto_server.port, client_id="restart-core"),
                        influx=InfluxSettings(kind="none"),
                        database_url=str(tmp_path / "gw.sqlite3"),
                        state=StateSettings(dir=tmp_path / "state", every_s=0.5))
    got: list[dict[str, Any]] = []
    port = mosquitto_server.port
    with client(port, "restart-feed", FEED, got), client(port, "restart-edge") as pub:
        await restart_twice(site, settings, pub, got)
    # step -1: the emergency alarm's shelving told to its chain, once (not again after the
    # restart)
    assert sorted(steps(got)) == [("G1:process", -1), ("G1:process", 0), ("L1:process", 0)]


async def restart_twice(site: SiteConfig, settings: Settings, pub: mqtt.Client,
                        got: list[dict[str, Any]]) -> None:
    topic = wire.readings_topic(site.enterprise.code, "edge-t")
    seq = [0]

    def reading(**values: float) -> None:
        now = int(time.time() * 1000)
        payload = wire.encode("edge-t", 1, seq[0], list(values), [now] * len(values),
                              list(values.values()), [0] * len(values))
        seq[0] += 1
        pub.publish(topic, payload, qos=1).wait_for_publish(5)

    runs: list[list[AlarmEvent]] = [[], []]
    for run in (0, 1):
        async with gateway_session(site, settings) as (core, ingest):

            async def collect(events: list[AlarmEvent], run: int = run) -> None:
                runs[run].extend(e for e in events if e.alarm_type == "process")
            core.alarm_sinks.append(collect)
            await wait_until(ingest.subscribed.is_set, 10)
            if run == 0:
                reading(G1=62.0, L1=11.0)
                await wait_until(lambda: len(got) == 2, 15)          # both: step 0
                await core.acknowledge("L1:process", "op.liu")
                await core.shelve("G1:process", "op.liu", "detector service", 60)
                await wait_until(lambda: len(got) == 3, 15)          # G1's shelving told
                await asyncio.sleep(4)       # past step 1: neither may escalate again
            else:
                reading(G1=63.0, L1=11.5)    # still high after the restart
                await wait_until(lambda: core.stats.readings >= 2, 10)
                await asyncio.sleep(4)       # past step 1 again
                reading(L1=5.0)              # back to normal
                await wait_until(lambda: core.stats.readings >= 3, 10)
                await asyncio.sleep(1)
    first = [(e.alarm_id, e.event) for e in runs[0]]
    assert sorted(first[:2]) == [("G1:process", "activate"), ("L1:process", "activate")]
    assert first[2:] == [("L1:process", "ack"), ("G1:process", "shelve")]
    assert [(e.alarm_id, e.event, e.state) for e in runs[1]] == [
        ("L1:process", "clear", "normal")]
