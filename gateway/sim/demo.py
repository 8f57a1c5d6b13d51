"""``hazgw demo``: simulator, edge agent and core in one process, on embedded defaults.

No broker and no database server are needed: the edge agent hands its wire messages straight
to the core's buffer (the same bytes it would publish over MQTT), readings and alarm events
are appended as line protocol to a local file, and the alarm history, occurrences and
register feed go to the embedded SQLite database (``HAZGW_DATABASE_URL``, by default
``var/hazgw.sqlite3``), so ``hazgw report`` counts the demo's alarms afterwards. A scripted
LPG leak at GT101 raises the GB/T 50493 first- and second-level alarms within the first
minute.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

from alerting.engine import AlarmEvent
from edge.agent import EdgeAgent
from edge.sim.simulator import Excursion, PlantModel, SimulatedDevice
from gateway.app import escalating, running_core
from gateway.settings import InfluxSettings, Settings
from gateway.sim.ports import free_port
from gateway.site import SiteConfig
from gateway.stream.compiled import as_compiled
from gateway.stream.core import AlarmSink, Core
from gateway.stream.ingest import MessageBuffer

log = logging.getLogger(__name__)

DEMO_SCRIPT = [
    # LPG leak at the sphere manifold: 0 → 65 %LEL in 25 s, passing L1 (25) and L2 (50).
    Excursion("GT101", start_s=8, rise_s=25, peak=65, hold_s=15, fall_s=20),
    # Dust-collector filter clogging: ΔP creeps above H (1800 Pa).
    Excursion("DC301_dp", start_s=20, rise_s=60, peak=2000, hold_s=30, fall_s=30),
]


class MemoryUplink:
    """The in-process uplink of the demo: the core's buffer stands in for the broker."""

    def __init__(self, buffer: MessageBuffer) -> None:
        self._buffer = buffer

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        """Hand the message to the core."""
        await self._buffer.put((topic, payload))

    async def close(self) -> None:
        """Nothing to close."""


def on_loopback(site: SiteConfig) -> SiteConfig:
    """The site with every Modbus device moved to a free loopback port."""
    edges = {}
    for eid, agent in site.edges.items():
        devs = {d: dev.model_copy(update={"host": "127.0.0.1", "port": free_port()})
                for d, dev in agent.modbus.items()}
        edges[eid] = agent.model_copy(update={"modbus": devs})
    return site.model_copy(update={"edges": edges})


def alarm_printer(out: TextIO, t0: float) -> AlarmSink:
    """Print annunciated alarm events as they happen."""
    colours = {1: "\033[1;31m", 2: "\033[31m", 3: "\033[33m", 4: "\033[36m"}

    async def show(events: list[AlarmEvent]) -> None:
        for e in events:
            if not e.annunciated:
                continue
            c = colours.get(e.priority, "") if out.isatty() else ""
            reset = "\033[0m" if c else ""
            gb = f" GB/T 50493 L{e.gb50493_level}" if e.gb50493_level else ""
            value = f" value {e.value:.2f}" if e.value is not None else ""
            limit = f" (limit {e.limit:g})" if e.limit is not None else ""
            fc = f" reaches it in {e.forecast_s:.0f} s" if e.forecast_s is not None else ""
            out.write(f"{c}[{time.monotonic() - t0:6.1f}s] {e.event.upper():<10} "
                      f"{e.alarm_id:<26} {e.prev_state:>9} → {e.state:<9} {e.level_name}"
                      f"{gb}{value}{limit}{fc}  [{e.source}/{e.equipment}]{reset}\n")
        out.flush()
    return show


async def run_demo(site: SiteConfig, duration_s: float | None, lp_path: Path,
                   out: TextIO = sys.stdout, status_every_s: float = 5.0,
                   settings: Settings | None = None) -> dict[str, int]:
    """Run the whole path until ``duration_s`` elapses (forever when None); returns counters.
    ``settings`` (the environment's by default) name the database of the alarm history."""
    settings = settings or Settings()
    site = on_loopback(site)
    points = {pid: p for pid, (_, _, p) in site.enterprise.points().items()}
    model = PlantModel(points, DEMO_SCRIPT)
    t0 = time.monotonic()
    sims = [SimulatedDevice(dev, model) for agent in site.edges.values()
            for dev in agent.modbus.values()]
    for sim in sims:
        await sim.start()
    buffer = MessageBuffer(asyncio.get_running_loop())
    influx = InfluxSettings(kind="file", path=lp_path)
    out.write(f"hazgw demo: {len(points)} points on {len(sims)} simulated Modbus devices; "
              f"readings and alarm events → {lp_path}\n")
    out.flush()
    runners = [EdgeAgent(site.enterprise.code, eid, agent, MemoryUplink(buffer))
               for eid, agent in site.edges.items()]
    running: list[Core] = []
    try:
        async with escalating(as_compiled(site), settings, running) as history, \
                running_core(site, influx, buffer, [alarm_printer(out, t0), history]) as run:
            core = run.core
            running.append(core)
            tasks = [asyncio.create_task(r.run(), name=f"edge-{r.edge_id}") for r in runners]
            try:
                deadline = None if duration_s is None else t0 + duration_s
                while deadline is None or time.monotonic() < deadline:
                    step = status_every_s if deadline is None else \
                        min(status_every_s, max(0.0, deadline - time.monotonic()))
                    await asyncio.sleep(step)
                    watch = ", ".join(f"{pid}={model.value(pid):.2f}"
                                      for pid in ("GT101", "V101_level", "AT201", "DC301_dp"))
                    out.write(f"[{time.monotonic() - t0:6.1f}s] {core.stats.readings} readings, "
                              f"{core.stats.alarm_events} alarm events, "
                              f"{core.writer.stats.points_written} points written | {watch}\n")
                    out.flush()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return {"readings": core.stats.readings, "alarm_events": core.stats.alarm_events,
                "points_written": core.writer.stats.points_written,
                "malformed": core.stats.malformed_messages}
    finally:
        for sim in sims:
            await sim.stop()
