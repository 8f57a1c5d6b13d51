"""Long-running services started by the CLI: the gateway core, an edge agent, the simulator."""

from __future__ import annotations

import asyncio
import logging

from edge import wire
from edge.agent import EdgeRunner
from edge.mqtt import MqttUplink
from edge.simulator import PlantModel, SimulatedDevice
from gateway.config import Settings, SiteConfig
from gateway.ingest import MessageBuffer, MqttIngest
from gateway.runtime import running_core

log = logging.getLogger(__name__)


async def run_gateway(site: SiteConfig, settings: Settings,
                      stop: asyncio.Event | None = None) -> None:
    """MQTT ingest → core → InfluxDB until ``stop`` is set (forever by default)."""
    stop = stop or asyncio.Event()
    buffer = MessageBuffer(asyncio.get_running_loop())
    topic = wire.readings_topic(site.enterprise.code, "+")
    ingest = MqttIngest(settings.mqtt, [topic], buffer)
    async with running_core(site, settings.influx, buffer) as core:
        ingest.start()
        try:
            while not stop.is_set():
                with_timeout = asyncio.create_task(stop.wait())
                await asyncio.wait([with_timeout], timeout=30)
                with_timeout.cancel()
                s = core.stats
                log.info("core: %d readings, %d alarm events, %d malformed, %d duplicates, "
                         "%d gaps; written %d, pending %d", s.readings, s.alarm_events,
                         s.malformed_messages, s.duplicate_messages, s.sequence_gaps,
                         core.writer.stats.points_written, core.writer.pending_points)
        finally:
            ingest.stop()


async def run_edge(site: SiteConfig, edge_id: str, settings: Settings,
                   stop: asyncio.Event | None = None) -> None:
    """Poll the edge's devices and publish to the broker until ``stop`` is set."""
    stop = stop or asyncio.Event()
    mqtt_settings = settings.mqtt.model_copy(update={"client_id": f"hazgw-edge-{edge_id}"})
    uplink = MqttUplink(mqtt_settings)
    runner = EdgeRunner(site.enterprise.code, edge_id, site.edges[edge_id], uplink)
    task = asyncio.create_task(runner.run(), name=f"edge-{edge_id}")
    try:
        await stop.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await uplink.close()


async def run_simulator(site: SiteConfig, host: str | None,
                        stop: asyncio.Event | None = None) -> None:
    """Serve every Modbus device of the site with simulated values."""
    stop = stop or asyncio.Event()
    points = {pid: p for pid, (_, _, p) in site.enterprise.points().items()}
    model = PlantModel(points)
    sims = [SimulatedDevice(dev, model, host=host) for agent in site.edges.values()
            for dev in agent.modbus.values()]
    for sim in sims:
        await sim.start()
        log.info("simulating %s:%d (%d registers)", sim.host, sim.port, len(sim.dev.registers))
    try:
        await stop.wait()
    finally:
        for sim in sims:
            await sim.stop()
