"""The long-running services as `hazgw simulate`, `hazgw edge` and `hazgw run` start them
(and as docker-compose wires them), on real Mosquitto and InfluxDB."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from edge.mqtt import MqttSettings
from edge.settings import EdgeSettings
from gateway.app import run_edge, run_gateway
from gateway.settings import InfluxSettings, Settings
from gateway.sim.demo import on_loopback
from gateway.sim.serve import run_simulator
from gateway.site import load_site
from tests.services import Server, influx_query, stored_readings
from tests.waiting import wait_until


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_simulator_edge_and_gateway_services_fill_influxdb(
        demo_config_path: Path, mosquitto_server: Server, influx_server: Server,
        influx_db: str, tmp_path: Path) -> None:
    site = on_loopback(load_site(demo_config_path))
    settings = Settings(
        mqtt=MqttSettings(port=mosquitto_server.port, client_id="svc-core"),
        influx=InfluxSettings(url=influx_server.url, database=influx_db, flush_interval_s=0.1))
    stop_sim, stop_edge, stop_core = asyncio.Event(), asyncio.Event(), asyncio.Event()
    sim = asyncio.create_task(run_simulator(site, None, stop_sim))
    core = asyncio.create_task(run_gateway(site, settings, stop_core, status_every_s=0.5))
    # the edge starts once every simulated device listens: on a busy machine its first
    # polls would otherwise fail, and their bad-quality samples are not what is tested here
    ports = [dev.port for a in site.edges.values() for dev in a.modbus.values()]
    await wait_until(lambda: all(port_open(p) for p in ports), 30)
    edge_settings = EdgeSettings(edge_spool_dir=tmp_path / "edge-spool", clock=settings.clock,
                                 mqtt=settings.mqtt)
    edge = asyncio.create_task(run_edge(site, edge_settings, stop_edge))
    n_points = len(site.enterprise.points())
    count = 0
    for _ in range(100):  # bounded: at most ~10 s
        await asyncio.sleep(0.1)
        count = stored_readings(influx_server, influx_db)
        if count >= 2 * n_points:
            break
    stop_edge.set()
    await edge
    stop_core.set()
    await core
    stop_sim.set()
    await sim
    assert count >= 2 * n_points
    rows = influx_query(influx_server, influx_db,
                        "SELECT count(value) FROM reading GROUP BY point")
    assert {s["tags"]["point"] for s in rows} == set(site.enterprise.points())
    bad = influx_query(influx_server, influx_db,
                       "SELECT count(quality) FROM reading WHERE quality > 0")
    assert bad == []
    # self-metrics: the last snapshot holds the final totals, and the broker's drop counter
    stats = influx_query(influx_server, influx_db,
                         "SELECT last(readings), last(points_written), "
                         "last(broker_dropped_messages), last(malformed_messages) "
                         "FROM gateway_stats WHERE instance = 'svc-core'")
    _, readings, written, dropped, malformed = stats[0]["values"][0]
    assert readings >= count and written >= readings
    assert malformed == 0
    # Mosquitto sends its $SYS drop counter when it changes (and retained on subscribe), so a
    # short run may end before the core has heard it; when heard, nothing was dropped.
    assert dropped in (0, None)
