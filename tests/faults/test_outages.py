"""Long outages of the servers around the gateway, on real Mosquitto and InfluxDB 1.6.7:

- InfluxDB down for a minute while readings keep coming: the gateway spools, acknowledges
  what is spooled, replays when InfluxDB is back; every (point, time) stored exactly once.
- Mosquitto killed (SIGKILL) with a backlog it acknowledged while the gateway was away, run
  with the shipped broker config (``config/mosquitto/mosquitto.conf``): once it is back,
  the gateway gets all of it. Seen before: with the shipped ``autosave_interval 30``, a kill
  lost 191 200 readings the broker had acknowledged.
"""

from __future__ import annotations

import asyncio
import getpass
import re
import time
from pathlib import Path

from pydantic import SecretStr

from edge import wire
from edge.mqtt import MqttSettings
from gateway import broker
from gateway.app import gateway_session
from gateway.settings import InfluxSettings, Settings
from gateway.sim.ports import free_port
from gateway.site import SiteConfig
from tests import services
from tests.faults.clients import client
from tests.gateway.test_e2e import small_site
from tests.services import Server, influx_query
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
POINTS = ["L1", "P1", "G1"]


def stored(influx: Server, db: str) -> set[tuple[str, int]]:
    return {(s["tags"]["point"], int(r[0])) for s in influx_query(
        influx, db, 'SELECT "value" FROM reading GROUP BY point') for r in s["values"]}


def message(seq: int, ts: int) -> bytes:
    return wire.encode("edge-t", 1, seq, POINTS, [ts] * 3, [5.0, 1.0, 2.0], [0, 0, 0])


async def test_influxdb_down_for_a_minute_loses_nothing(tmp_path: Path) -> None:
    site = small_site(free_port())
    topic = wire.readings_topic(site.enterprise.code, "edge-t")
    sent: set[tuple[str, int]] = set()
    with services.mosquitto(tmp_path / "mq") as broker, \
            services.influxdb(tmp_path / "influx") as influx:
        services.influx_create_db(influx, "outage")
        settings = Settings(mqtt=MqttSettings(port=broker.port, client_id="outage-core"),
                            influx=InfluxSettings(url=influx.url, database="outage",
                                                  flush_interval_s=0.1, timeout_s=5,
                                                  spool_dir=tmp_path / "spool"))
        with client(broker.port, "outage-edge") as pub:
            async with gateway_session(site, settings) as (core, ingest):
                await wait_until(ingest.subscribed.is_set, 10)
                t0 = int(time.time() * 1000)
                seq = 0
                for phase in ("before", "down", "after"):
                    if phase == "down":
                        await asyncio.to_thread(influx.stop)
                    if phase == "after":
                        await asyncio.to_thread(influx.start_again, services.INFLUX_READY)
                    n = 600 if phase == "down" else 50          # 10 messages/s: 60 s down
                    for _ in range(n):
                        ts = t0 + seq * 100
                        pub.publish(topic, message(seq, ts), qos=1)
                        sent.update((p, ts) for p in POINTS)
                        seq += 1
                        await asyncio.sleep(0.1)
                    if phase == "down":
                        assert core.writer.stats.spooled_points > 0
                await wait_until(lambda: core.stats.readings >= len(sent), 60)
                assert await core.writer.drained(60)
        got = stored(influx, "outage")
    assert got == sent
    assert core.stats.duplicate_messages == 0 and core.writer.stats.rejected_points == 0


def shipped_broker_conf(workdir: Path, port: int, site: SiteConfig,
                        ) -> tuple[Path, dict[str, tuple[str, str]]]:
    """The shipped Mosquitto config, on a loopback port and a private data directory, with
    the site's users and ACL from ``hazgw broker-config``; (config, user → login)."""
    users = {c.name: (c.name, c.password) for c in broker.write(site, workdir / "generated")}
    text = (ROOT / "config" / "mosquitto" / "mosquitto.conf").read_text()
    text = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {workdir}/", text)
    text = re.sub(r"(?m)^listener .*$", f"listener {port} 127.0.0.1", text)
    text = text.replace("/mosquitto/config/generated", str(workdir / "generated"))
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"user {getpass.getuser()}\n{text}")
    return conf, users


async def test_a_broker_killed_with_a_backlog_keeps_what_it_acknowledged(
        tmp_path: Path, influx_server: Server, influx_db: str) -> None:
    site = small_site(free_port())
    topic = wire.readings_topic(site.enterprise.code, "edge-t")
    workdir = tmp_path / "mq"
    workdir.mkdir()
    port = free_port()
    conf, users = shipped_broker_conf(workdir, port, site)
    argv = [services.require_binary("mosquitto"), "-c", str(conf)]
    core_user, core_pw = users["hazgw-core"]
    settings = Settings(mqtt=MqttSettings(port=port, client_id="backlog-core",
                                          username=core_user, password=SecretStr(core_pw)),
                        influx=InfluxSettings(url=influx_server.url, database=influx_db,
                                              flush_interval_s=0.1))
    sent: set[tuple[str, int]] = set()
    with services._serve("mosquitto", argv, workdir, port, services.MOSQUITTO_READY) as broker:
        async with gateway_session(site, settings) as (_, ingest):
            await wait_until(ingest.subscribed.is_set, 10)     # the persistent session
        with client(port, "backlog-edge", login=users["edge-t"]) as pub:  # gateway away
            t0 = int(time.time() * 1000)
            infos = []
            for seq in range(300):
                ts = t0 + seq * 10
                infos.append(pub.publish(topic, message(seq, ts), qos=1))
                sent.update((p, ts) for p in POINTS)
            for info in infos:
                info.wait_for_publish(10)
            assert all(i.is_published() for i in infos)         # the broker acknowledged
        await asyncio.sleep(2.5)                                 # autosave_interval 1 s
        broker.proc.kill()                                       # SIGKILL, by its PID
        broker.proc.wait(10)
        await asyncio.to_thread(broker.start_again, services.MOSQUITTO_READY)
        async with gateway_session(site, settings) as (core, ingest):
            await wait_until(lambda: core.stats.readings >= len(sent), 30)
            await core.writer.flush()
    assert stored(influx_server, influx_db) == sent
    assert len(sent) == 900
