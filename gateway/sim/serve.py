"""``hazgw simulate``: a site's devices and sensors served live, from a scenario, on a clock
that may run faster than real time.

Every Modbus device of the config is served on its own host and port (the same register maps
the edge agent reads; RTU-over-TCP slaves sharing a converter share one server; a serial RTU
device cannot be served on a TCP port and is skipped with a warning). MQTT-native sensors are
published to the broker of the settings once per clock step. With ``speed`` > 1 the edge agent
and the gateway must run on the same clock: start them with the ``HAZGW_CLOCK`` printed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from edge.clock import ScaledClock
from edge.config import ModbusDevice
from edge.mqtt import MqttConnection, MqttSettings
from edge.sim.scenario import Scenario, SimPlant
from edge.sim.simulator import ScenarioSource, SimulatedDevice, sensor_message
from gateway.site import SiteConfig

log = logging.getLogger(__name__)


def devices_by_endpoint(site: SiteConfig) -> list[list[tuple[str, ModbusDevice]]]:
    """Devices grouped by the endpoint they are reached at (one server each)."""
    groups: dict[str, list[tuple[str, ModbusDevice]]] = {}
    for agent in site.edges.values():
        for did, dev in agent.modbus.items():
            groups.setdefault(dev.endpoint(), []).append((did, dev))
    return list(groups.values())


def site_plant(site: SiteConfig, scenario: Scenario, base: Path = Path(".")) -> SimPlant:
    """The scenario's plant over the site's points and Modbus devices (checked against them)."""
    points = {pid: p for pid, (_, _, p) in site.enterprise.points().items()}
    devices = {d: dev for a in site.edges.values() for d, dev in a.modbus.items()}
    return SimPlant(scenario, points, devices, base)


async def run_simulator(site: SiteConfig, host: str | None, stop: asyncio.Event | None = None,
                        scenario: Scenario | None = None, base: Path = Path("."),
                        speed: float | None = None, seed: int | None = None,
                        mqtt: MqttSettings | None = None, clock: ScaledClock | None = None,
                        ) -> ScaledClock:
    """Serve the site until ``stop`` is set or the scenario ends; returns the clock used
    (``clock`` is for callers that must know it before the start: in-process tests)."""
    stop = stop or asyncio.Event()
    scenario = scenario or Scenario(duration_s=366 * 86400)
    clock = clock or ScaledClock(int(time.time() * 1000), float(speed or scenario.speed))
    updates: dict[str, object] = {"start": datetime.fromtimestamp(clock.start_ms / 1000, UTC)}
    if seed is not None:
        updates["seed"] = seed
    scenario = scenario.model_copy(update=updates)
    source = ScenarioSource(site_plant(site, scenario, base), clock)
    sims: list[SimulatedDevice] = []
    for group in devices_by_endpoint(site):
        (first_id, first), rest = group[0], group[1:]
        if first.transport == "rtu":
            log.warning("not simulated: %s is on serial port %s (serve it with a pseudo-terminal"
                        " pair, see tests/edge/test_transports.py)", first_id,
                        first.serial.port if first.serial else "?")
            continue
        sim = SimulatedDevice(first, source, host=host, also=tuple(d for _, d in rest),
                              device_id=first_id)
        await sim.start()
        sim.watch()
        sims.append(sim)
        log.info("simulating %s at %s:%d (%d registers)", ", ".join(d for d, _ in group),
                 sim.host, sim.port, sum(len(d.registers) for _, d in group))
    log.info("simulated clock at %gx: run the edge and the gateway with HAZGW_CLOCK=%s",
             clock.speed, clock.spec())
    sensors = [s for a in site.edges.values() for s in a.mqtt_sensors.values()]
    client = None
    if sensors and mqtt is not None:
        client = MqttConnection("simulator", mqtt.model_copy(
            update={"client_id": "hazgw-simulator"}), persistent=False)
        client.start()
    step_s = scenario.step_s or 1.0
    sent: dict[str, float] = {}
    try:
        while not stop.is_set():
            if source.t_s() > scenario.duration_s:
                log.info("scenario finished after %.0f simulated seconds", scenario.duration_s)
                break
            if client is not None:
                for s in sensors:
                    msg = sensor_message(s, source, clock.now_ms(), sent)
                    if msg is not None:
                        await client.send(msg[0], msg[1])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(step_s / clock.speed):
                    await stop.wait()
    finally:
        if client is not None:
            client.stop()
        for sim in sims:
            await sim.stop()
    return clock
