"""The maintenance teams' test kit: a simulated site and the gateway under test, in lockstep.

``SimulatedSite`` serves every Modbus device of a site config on a free loopback port (the
same register maps, so a real device's config is simulated unchanged) with a scenario's
values, and produces its MQTT-native sensors' messages. ``run_site`` then runs the real edge
code (pollers, register decoding, wire batches) and the real gateway core (wire decoding,
rules, alarm lifecycle) against it, one clock step at a time: set the simulated time, poll
every device that is due over Modbus TCP, publish the sensors, hand the edge's wire batches
to the core, tick the alarm clock. Time is a ``SteppedClock``, so the timeline depends on the
scenario only, not on how fast the machine is; ``speed`` is the pace aimed for (a slow machine
runs a scenario slower, never differently).

What is not in the loop: the MQTT broker between edge and core (messages are handed over in
the process) and InfluxDB (readings are discarded unless ``influx`` settings are given).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alerting.engine import AlarmEvent
from edge.agent import EdgeAgent
from edge.clock import SteppedClock
from edge.config import ModbusDevice
from edge.mqtt import MqttSettings
from edge.sensors import MqttSensorSource
from edge.sim.scenario import Scenario, load_scenario
from edge.sim.simulator import ScenarioSource, SimulatedDevice, sensor_message
from edge.stats import encode_stats
from gateway.app import Running, running_core
from gateway.settings import InfluxSettings
from gateway.sim.ports import free_port
from gateway.sim.serve import devices_by_endpoint, site_plant
from gateway.site import SiteConfig, load_site
from gateway.stream.core import Core


@dataclass(frozen=True)
class TimelineRow:
    """One annunciated alarm event, at simulated seconds since the scenario started."""

    t_s: float
    point: str
    level: str
    event: str
    alarm_type: str

    def __str__(self) -> str:
        return f"{self.t_s:8.1f}s  {self.level:<12} {self.point:<20} {self.event} " \
               f"({self.alarm_type})"


@dataclass
class RunResult:
    """What a run gave: every alarm event, and how the run went."""

    events: list[AlarmEvent]
    start_ms: int
    steps: int
    readings: int
    wall_s: float
    simulated_s: float
    malformed: int = 0

    @property
    def speed(self) -> float:
        """Simulated seconds per real second achieved."""
        return self.simulated_s / self.wall_s if self.wall_s > 0 else float("inf")

    def timeline(self) -> list[TimelineRow]:
        """Annunciated events (what an operator sees) in time order."""
        rows = [TimelineRow((e.ts - self.start_ms) / 1000, e.point or _name(e), e.level_name,
                            e.event, e.alarm_type) for e in self.events if e.annunciated]
        return sorted(rows, key=lambda r: (r.t_s, r.point, r.level))


def _name(e: AlarmEvent) -> str:
    """A timeline's name for an alarm without a point: a device by its ``<edge>/<device>``
    name, a vote or flood by its alarm id."""
    return e.alarm_id.rsplit(":", 1)[0] if e.alarm_type == "device" else e.alarm_id


STATUS_EVERY_MS = 10_000     # self-metrics and dashboard status, as the services write them
# The sensors' MQTT client is built but never connected: the kit hands it messages directly.
_NO_BROKER = MqttSettings(host="127.0.0.1", port=1)


class SimulatedSite:
    """A site config's devices and sensors, driven by a scenario on a stepped clock."""

    def __init__(self, site: SiteConfig, scenario: Scenario | None = None,
                 base: Path = Path("."), *, speed: float | None = None,
                 seed: int | None = None, duration_s: float | None = None) -> None:
        scenario = scenario or Scenario(duration_s=duration_s or 600)
        updates: dict[str, object] = {}
        if seed is not None:
            updates["seed"] = seed
        if duration_s is not None:
            updates["duration_s"] = duration_s
        self.scenario = scenario.model_copy(update=updates) if updates else scenario
        self.speed = float(speed or self.scenario.speed)
        if not 0 < self.speed <= 1000:
            raise ValueError(f"speed {self.speed:g}: must be in (0, 1000]")
        self.clock = SteppedClock(self.scenario.start_ms, self.speed)
        self.plant = site_plant(site, self.scenario, base)
        self.source = ScenarioSource(self.plant, self.clock)
        intervals = [dev.poll_interval_s for a in site.edges.values()
                     for dev in a.modbus.values()] or [1.0]
        self.step_ms = int(1000 * (self.scenario.step_s or min(intervals)))
        self.original = site
        self.site = site
        self.devices: list[SimulatedDevice] = []

    @classmethod
    def from_files(cls, config: Path | str, scenario: Path | str | None = None, *,
                   speed: float | None = None, seed: int | None = None,
                   duration_s: float | None = None) -> SimulatedSite:
        """From a site config file and, optionally, a scenario file."""
        sc, base = load_scenario(scenario) if scenario is not None else (None, Path("."))
        return cls(load_site(Path(config)), sc, base, speed=speed, seed=seed,
                   duration_s=duration_s)

    async def start(self) -> None:
        """Serve each Modbus endpoint on a free loopback port; ``site`` then points there
        (a serial RTU device is served as RTU over TCP: the frames are the same)."""
        moved: dict[str, ModbusDevice] = {}
        for group in devices_by_endpoint(self.original):
            port = free_port()
            for did, dev in group:
                moved[did] = dev.model_copy(update={
                    "host": "127.0.0.1", "port": port, "serial": None,
                    "transport": "tcp" if dev.transport == "tcp" else "rtu_over_tcp"})
            first, *rest = (moved[d] for d, _ in group)
            sim = SimulatedDevice(first, self.source, also=tuple(rest), device_id=group[0][0])
            await sim.start()
            self.devices.append(sim)
        self.site = self.original.model_copy(update={"edges": {
            eid: agent.model_copy(update={"modbus": {d: moved[d] for d in agent.modbus}})
            for eid, agent in self.original.edges.items()}})

    async def sync(self) -> None:
        """Apply device faults (off line, back on line) for the current time."""
        for sim in self.devices:
            await sim.sync()

    async def stop(self) -> None:
        """Stop every server."""
        for sim in self.devices:
            await sim.stop()
        self.devices.clear()


@dataclass
class _Edge:
    runner: EdgeAgent
    sensors: MqttSensorSource | None
    next_due_ms: dict[str, int] = field(default_factory=dict)
    sent: dict[str, float] = field(default_factory=dict)


class _CoreUplink:
    """Hands an edge's wire batches straight to the core (no broker in the kit)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        await self.core.handle([(topic, payload)])

    async def close(self) -> None:
        return None


async def run_site(sim: SimulatedSite, duration_s: float | None = None,
                   influx: InfluxSettings | None = None,
                   on_step: Callable[[int, Core], None] | None = None) -> RunResult:
    """Run the edge and the gateway core against ``sim`` for ``duration_s`` simulated
    seconds (the scenario's by default), one clock step at a time."""
    duration_s = sim.scenario.duration_s if duration_s is None else duration_s
    events: list[AlarmEvent] = []

    async def collect(batch: list[AlarmEvent]) -> None:
        events.extend(batch)

    await sim.start()
    started = time.monotonic()
    steps = 0
    try:
        # the composition root's core, driven here one step at a time (no buffer: no loops)
        async with running_core(sim.site, influx, None, [collect], sim.clock) as run:
            core = run.core
            code = sim.site.enterprise.code
            edges = []
            for eid, agent in sim.site.edges.items():
                runner = EdgeAgent(code, eid, agent, _CoreUplink(core), clock=sim.clock)
                for i, p in enumerate(runner.pollers):     # the same backoff every run
                    p.rnd = random.Random(sim.scenario.seed * 1000 + i)
                sensors = (MqttSensorSource(_NO_BROKER, agent.mqtt_sensors, runner.collect,
                                            sim.clock) if agent.mqtt_sensors else None)
                edges.append(_Edge(runner, sensors))
            start_ms = sim.clock.now_ms()
            end_ms = start_ms + int(duration_s * 1000)
            while sim.clock.now_ms() <= end_ms:
                now = sim.clock.now_ms()
                await sim.sync()
                for e in edges:
                    await _step_edge(e, now, sim)
                await core.tick(now)
                if (now - start_ms) % STATUS_EVERY_MS < sim.step_ms:
                    await _status(run, edges, now)
                if on_step is not None:
                    on_step(now, core)
                steps += 1
                # pace: never faster than speed × real time; slower if the machine must
                ahead = started + steps * sim.step_ms / 1000 / sim.speed - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                sim.clock.advance(sim.step_ms)
            for e in edges:
                for p in e.runner.pollers:
                    p.line.close()
            malformed = core.stats.malformed_messages + sum(
                e.sensors.malformed for e in edges if e.sensors is not None)
            readings = core.stats.readings
    finally:
        await sim.stop()
    return RunResult(events, start_ms, steps, readings, time.monotonic() - started,
                     steps * sim.step_ms / 1000, malformed)


async def _status(run: Running, edges: list[_Edge], now: int) -> None:
    """What the gateway and the edges write about themselves, on the simulated clock."""
    core = run.core
    body = run.status_lines(now, "simkit")
    await core.writer.put(body, body.count(b"\n"))
    for e in edges:
        st = e.runner.stats()
        st = dataclasses.replace(st, ts_ms=now)
        await core.handle([(e.runner.stats_topic, encode_stats(st))])


async def _step_edge(e: _Edge, now: int, sim: SimulatedSite) -> None:
    due = [p for p in e.runner.pollers if e.next_due_ms.get(p.device_id, 0) <= now]
    # devices are polled together, as the edge agent's independent tasks would
    await asyncio.gather(*(p.poll_once() for p in due))
    for p in due:
        e.next_due_ms[p.device_id] = now + int(p.dev.poll_interval_s * 1000)
    if e.sensors is not None:
        for sensor in e.runner.cfg.mqtt_sensors.values():
            msg = sensor_message(sensor, sim.source, now, e.sent)
            if msg is not None:
                samples = e.sensors.receive(*msg)
                if samples is not None:
                    e.runner.collect(samples)
    await e.runner.flush()


def run(sim: SimulatedSite, duration_s: float | None = None,
        influx: InfluxSettings | None = None) -> RunResult:
    """``run_site`` for synchronous callers (pytest tests need no asyncio plugin)."""
    return asyncio.run(run_site(sim, duration_s, influx))

