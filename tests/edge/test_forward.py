"""Store and forward through a real broker outage: the edge spools while Mosquitto is down,
replays when it is back, and every reading reaches InfluxDB exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.agent import EdgeRunner
from edge.forward import StoreAndForward
from edge.mqtt import MqttSettings, MqttUplink
from edge.simulator import PlantModel, SimulatedDevice
from edge.spool import Spool
from gateway.config import InfluxSettings, Settings
from gateway.service import gateway_session
from tests import services
from tests.gateway.test_e2e import small_site
from tests.services import Server, free_port, influx_query
from tests.waiting import wait_until


async def test_broker_outage_loses_nothing_and_doubles_nothing(
        tmp_path: Path, influx_server: Server, influx_db: str) -> None:
    site = small_site(free_port())
    dev = site.edges["edge-t"].modbus["plc"]
    points = {pid: p for pid, (_, _, p) in site.enterprise.points().items()}
    sim = SimulatedDevice(dev, PlantModel(points))
    await sim.start()
    with services.mosquitto(tmp_path / "mq") as broker:
        mqtt = MqttSettings(port=broker.port, client_id="core-outage")
        settings = Settings(mqtt=mqtt, influx=InfluxSettings(url=influx_server.url,
                                                             database=influx_db))
        try:
            async with gateway_session(site, settings) as (core, ingest):
                await wait_until(ingest.subscribed.is_set)
                await asyncio.sleep(1.2)            # the broker saves the session (autosave 1 s)
                uplink = MqttUplink(mqtt.model_copy(update={"client_id": "edge-outage"}))
                async with StoreAndForward(uplink, Spool(tmp_path / "spool", 10**8)) as fwd:
                    edge = EdgeRunner(site.enterprise.code, "edge-t", site.edges["edge-t"], fwd)
                    task = asyncio.create_task(edge.run())
                    await wait_until(lambda: core.stats.readings > 0, 15)
                    await asyncio.to_thread(broker.stop)
                    await wait_until(lambda: len(fwd.spool) >= 5, 15)    # spooling now
                    await asyncio.to_thread(broker.start_again, services.MOSQUITTO_READY)
                    await wait_until(lambda: fwd.replayed >= 5 and len(fwd.spool) == 0, 60)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    await wait_until(lambda: uplink.all_acknowledged(), 15)
                    published = edge.readings_published
                    await wait_until(lambda: core.stats.readings >= published, 30)
        finally:
            await sim.stop()
    assert fwd.replayed >= 5
    assert core.stats.readings == published          # each reading processed once
    rows = influx_query(influx_server, influx_db, "SELECT count(quality) FROM reading")
    assert rows[0]["values"][0][1] == published      # and every one stored
