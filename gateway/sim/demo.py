"""``hazgw demo``: simulator, edge agent, core and console in one process, on embedded
defaults.

No broker and no database server are needed: the edge agent hands its wire messages straight
to the core's buffer (the same bytes it would publish over MQTT), readings and alarm events
are appended as line protocol to a local file, and the alarm history, occurrences, register
and outbox go to the embedded SQLite database (``HAZGW_DATABASE_URL``, by default
``var/hazgw.sqlite3``), so ``hazgw report`` counts the demo's alarms afterwards. A scripted
LPG leak at GT101 raises the GB/T 50493 first- and second-level alarms within the first
minute; ``scenario`` runs a scenario file instead, on a clock ``speed`` times real time.

With a ``DemoConsole`` the console is served too, with one fresh token per demo user
(printed with the sign-in URL), and a site without an escalation policy gets the demo's:
notifications are appended to JSON-lines files (``var/demo/notifications``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from alerting.engine import AlarmEvent
from alerting.escalation import Contacts, EscalationConfig
from edge.agent import EdgeAgent
from edge.clock import WALL, Clock, ScaledClock
from edge.sim.scenario import Scenario
from edge.sim.simulator import Excursion, PlantModel, SimulatedDevice
from gateway.api.tokens import digest, new_token
from gateway.app import escalating, running_core, serving_api
from gateway.settings import (
    TOKEN_DIGEST_PREFIX,
    ApiRole,
    ApiSettings,
    ApiUser,
    InfluxSettings,
    Settings,
)
from gateway.sim.ports import free_port
from gateway.sim.serve import run_simulator
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


# who signs in to the demo's console: one of each role that works there
DEMO_USERS: dict[str, tuple[str, ApiRole]] = {
    "operator": ("op.demo", "operator"), "safety manager": ("sm.demo", "safety_manager"),
    "regulator": ("reg.demo", "regulator")}
# Without an escalation policy of its own, the demo plant escalates on a short ladder to
# files: what the responsible persons and the regulator would receive, readable at once.
DEMO_ESCALATION = {"default": {
    1: {"steps": [{"after_s": 0, "roles": ["operator"]},
                  {"after_s": 60, "roles": ["operational", "technical"]},
                  {"after_s": 120, "roles": ["main"]},
                  {"after_s": 180, "roles": ["regulator"]}]},
    2: {"steps": [{"after_s": 0, "roles": ["operator"]},
                  {"after_s": 120, "roles": ["operational"]},
                  {"after_s": 300, "roles": ["regulator"]}]}}}
DEMO_CONTACTS = {"default": {
    "operator": [{"channel": "file", "target": "operator.jsonl"}],
    "operational": [{"channel": "file", "target": "responsible-persons.jsonl"}],
    "technical": [{"channel": "file", "target": "responsible-persons.jsonl"}],
    "main": [{"channel": "file", "target": "responsible-persons.jsonl"}],
    "regulator": [{"channel": "file", "target": "regulator.jsonl"}]}}


@dataclass
class DemoConsole:
    """The console of the demo: where it is served and the tokens made for it."""

    host: str = "127.0.0.1"
    port: int = 8080
    tokens: dict[str, str] = field(default_factory=dict)      # demo user → token

    def __post_init__(self) -> None:
        self.tokens = self.tokens or {who: new_token() for who in DEMO_USERS}

    def users(self) -> dict[str, ApiUser]:
        """The API's token table: digests only, as in production."""
        return {f"{TOKEN_DIGEST_PREFIX}{digest(tok)}": ApiUser(name=DEMO_USERS[who][0],
                                                               role=DEMO_USERS[who][1])
                for who, tok in self.tokens.items()}

    def url(self, who: str | None = None) -> str:
        """The console's address; with a user, one that signs them in."""
        base = f"http://{self.host}:{self.port}/console/"
        return base if who is None else f"{base}#token={self.tokens[who]}"


def with_demo_escalation(site: SiteConfig) -> SiteConfig:
    """The site, with the demo's escalation to files when it has no policy of its own."""
    if site.escalation.default or site.escalation.sources:
        return site
    return site.model_copy(update={
        "escalation": EscalationConfig.model_validate(DEMO_ESCALATION),
        "contacts": Contacts.model_validate(DEMO_CONTACTS)})


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


def port_problem(host: str, port: int) -> str | None:
    """Why the console cannot be served at host:port (in use, say), or None."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return f"cannot serve the console at {host}:{port}: {exc.strerror or exc}"
    return None


async def _listening(host: str, port: int, wait_s: float = 10.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:           # bounded
        try:
            _, w = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        w.close()
        return True
    return False


Watch = Callable[[], str]


@asynccontextmanager
async def simulated_plant(site: SiteConfig, scenario: Scenario | None, base: Path,
                          clock: Clock) -> AsyncIterator[tuple[Watch, asyncio.Event]]:
    """The site's devices served on loopback: by the built-in script, or by ``scenario``
    on ``clock`` (a ScaledClock). Yields what the status line shows of the plant and an
    event set when the scenario is over."""
    points = {pid: p for pid, (_, _, p) in site.enterprise.points().items()}
    over = asyncio.Event()
    if scenario is None:
        model = PlantModel(points, DEMO_SCRIPT)
        sims = [SimulatedDevice(dev, model) for agent in site.edges.values()
                for dev in agent.modbus.values()]
        for sim in sims:
            await sim.start()
        try:
            yield (lambda: ", ".join(f"{pid}={model.value(pid):.2f}" for pid in
                                     ("GT101", "V101_level", "AT201", "DC301_dp"))), over
        finally:
            for sim in sims:
                await sim.stop()
        return
    assert isinstance(clock, ScaledClock)
    stop = asyncio.Event()
    task = asyncio.create_task(run_simulator(site, None, stop, scenario, base, clock=clock),
                               name="simulator")
    task.add_done_callback(lambda _: over.set())
    await asyncio.sleep(0.2)       # its servers listen before the edge's first poll
    try:
        yield (lambda: f"scenario t={(clock.now_ms() - clock.start_ms) / 1000:.0f} s"), over
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)


async def run_demo(site: SiteConfig, duration_s: float | None, lp_path: Path,
                   out: TextIO = sys.stdout, status_every_s: float = 5.0,
                   settings: Settings | None = None, scenario: Scenario | None = None,
                   base: Path = Path("."), speed: float | None = None,
                   console: DemoConsole | None = None, stop: asyncio.Event | None = None,
                   ) -> dict[str, int]:
    """Run the whole path until ``duration_s`` elapses (forever when None; with a scenario,
    at most until it ends) or ``stop`` is set; returns counters. ``settings`` (the
    environment's by default) name the database of the alarm history and register."""
    settings = settings or Settings()
    site = on_loopback(site)
    if console is not None:
        problem = port_problem(console.host, console.port)
        if problem is not None:
            raise RuntimeError(f"{problem} (choose another: hazgw demo --port N)")
        site = with_demo_escalation(site)
        settings = settings.model_copy(update={
            "api": ApiSettings(host=console.host, port=console.port, tokens=console.users()),
            "notify": settings.notify.model_copy(
                update={"file_dir": lp_path.parent / "notifications"})})
    clock: Clock = WALL if scenario is None else ScaledClock(
        int(time.time() * 1000), float(speed or scenario.speed))
    t0 = time.monotonic()
    buffer = MessageBuffer(asyncio.get_running_loop())
    influx = InfluxSettings(kind="file", path=lp_path)
    settings = settings.model_copy(update={"influx": influx})   # the console reads no InfluxDB
    n_points = len(site.enterprise.points())
    n_devices = sum(len(a.modbus) for a in site.edges.values())
    what = "the built-in leak script" if scenario is None else \
        f"scenario {scenario.description or '(no description)'!r} at {clock.speed:g}x"
    out.write(f"hazgw demo: {n_points} points on {n_devices} simulated Modbus devices, "
              f"{what}; readings and alarm events → {lp_path}\n")
    out.flush()
    runners = [EdgeAgent(site.enterprise.code, eid, agent, MemoryUplink(buffer), clock=clock)
               for eid, agent in site.edges.items()]
    running: list[Core] = []
    compiled = as_compiled(site)
    async with simulated_plant(site, scenario, base, clock) as (watch, over), \
            escalating(compiled, settings, running, clock) as history, \
            running_core(compiled, influx, buffer, [alarm_printer(out, t0), history],
                         clock) as run:
        core = run.core
        running.append(core)
        tasks = [asyncio.create_task(r.run(), name=f"edge-{r.edge_id}") for r in runners]
        try:
            async with serving_api(core, settings) if console is not None \
                    else contextlib.nullcontext():
                if console is not None:
                    await announce_console(out, console, lp_path.parent / "notifications")
                deadline = None if duration_s is None else t0 + duration_s
                while (deadline is None or time.monotonic() < deadline) and not over.is_set() \
                        and not (stop is not None and stop.is_set()):
                    step = status_every_s if deadline is None else \
                        min(status_every_s, max(0.0, deadline - time.monotonic()))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(step):
                            await _either(over, stop)
                    standing = core.standing()
                    unack = sum(e.state in ("unack", "rtn_unack") for e in standing)
                    out.write(f"[{time.monotonic() - t0:6.1f}s] {core.stats.readings} readings, "
                              f"{core.stats.alarm_events} alarm events, {len(standing)} "
                              f"standing ({unack} unacknowledged), "
                              f"{core.writer.stats.points_written} points written | "
                              f"{watch()}\n")
                    out.flush()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {"readings": core.stats.readings, "alarm_events": core.stats.alarm_events,
            "points_written": core.writer.stats.points_written,
            "malformed": core.stats.malformed_messages}


async def _either(a: asyncio.Event, b: asyncio.Event | None) -> None:
    """Until ``a`` or ``b`` is set."""
    waits = [asyncio.create_task(e.wait()) for e in (a, b) if e is not None]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def announce_console(out: TextIO, console: DemoConsole, notes: Path) -> None:
    """Say where the console is, once it answers, with a sign-in link per demo user."""
    if not await _listening(console.host, console.port):
        out.write(f"the console did not start at {console.host}:{console.port} (see the log)\n")
        return
    out.write(f"\nThe control room is open: {console.url()}\n")
    for who, (name, role) in DEMO_USERS.items():
        out.write(f"  sign in as the {who} ({name}, role {role}):\n    {console.url(who)}\n"
                  f"    token: {console.tokens[who]}\n")
    out.write(f"  notifications to the responsible persons and the regulator: {notes}/\n\n")
    out.flush()


def summary(counts: dict[str, int]) -> str:
    """The demo's counters as lines a person reads."""
    return (f"demo finished:\n  readings processed   {counts['readings']}\n"
            f"  alarm events         {counts['alarm_events']}\n"
            f"  points written       {counts['points_written']}\n"
            f"  malformed messages   {counts['malformed']}")
