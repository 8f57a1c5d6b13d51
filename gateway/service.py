"""Long-running services started by the CLI: the gateway core, an edge agent, the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alerting.engine import AlarmEvent
from edge import wire
from edge.agent import EdgeRunner
from edge.clock import parse_clock
from edge.forward import StoreAndForward, spool_capacity
from edge.mqtt import MqttUplink
from edge.spool import Spool
from edge.stats import stats_topic
from gateway.alarms import AlarmPublisher
from gateway.compiled import CompiledSite, as_compiled
from gateway.config import Settings, SiteConfig
from gateway.config_audit import record_changes
from gateway.core import AlarmSink, Core
from gateway.escalation import Escalator
from gateway.health import snapshot, stats_line
from gateway.ingest import MessageBuffer, MqttIngest
from gateway.notifiers import build_notifiers
from gateway.outbox import Delivery
from gateway.register import Register
from gateway.register_feed import RegisterFeed
from gateway.runtime import running_core
from gateway.storage import Database

log = logging.getLogger(__name__)


@asynccontextmanager
async def gateway_session(site: SiteConfig | CompiledSite, settings: Settings
                          ) -> AsyncIterator[tuple[Core, MqttIngest]]:
    """MQTT ingest feeding the core while the context is open; drains and flushes on exit."""
    site = as_compiled(site)
    code = site.enterprise
    buffer = MessageBuffer(asyncio.get_running_loop())
    clock = parse_clock(settings.clock)
    topics = [wire.readings_topic(code, "+"), stats_topic(code, "+")]
    ingest = MqttIngest(settings.mqtt, topics, buffer)
    publisher = AlarmPublisher(code, settings.mqtt)
    sinks: list[AlarmSink] = [publisher]
    running: list[Core] = []        # for the register's evidence snapshots, once it exists
    async with escalating(site, settings, running) as escalation_sink:
        if escalation_sink is not None:
            sinks.append(escalation_sink)
        try:
            async with running_core(site, settings.influx, buffer, sinks, clock,
                                    settings.ingest_linger_ms / 1000) as core:
                running.append(core)
                ingest.start()
                try:
                    yield core, ingest
                finally:
                    ingest.stop()
                    # the last snapshot, so a clean stop leaves final totals in the database
                    await core.writer.put(stats_line(code, settings.mqtt.client_id,
                                                     snapshot(core, buffer, ingest),
                                                     clock.now_ms()), 1)
        finally:
            await publisher.close()


@asynccontextmanager
async def escalating(site: CompiledSite, settings: Settings, running: list[Core],
                     ) -> AsyncIterator[AlarmSink | None]:
    """The escalation clock, the outbox delivery and the register feed (alarms that become
    register entries) while the context is open — nothing when the site defines no escalation
    policy; yields the alarm sink that feeds them."""
    if not (site.escalation.default or site.escalation.sources):
        yield None
        return
    db = await asyncio.to_thread(Database, settings.database_url)
    changed = await asyncio.to_thread(record_changes, db, site.enterprise, site.table,
                                      str(settings.config), int(time.time() * 1000))
    if changed:
        log.warning("config: alarm settings of %d point(s) changed since the last start "
                    "(audit-logged)", changed)
    esc = Escalator(db, site.escalation, site.contacts, site.enterprise, site.source_levels)
    notifiers = build_notifiers(settings.mqtt.model_copy(
        update={"client_id": f"{settings.mqtt.client_id}-notify"}), settings.notify)
    delivery = Delivery(db, notifiers)
    feed = RegisterFeed(Register(db), site.register_rules, site.enterprise,
                        lambda point: running[0].engine.recent(point) if running else [],
                        site.contacts)
    stop = asyncio.Event()

    async def record(events: list[AlarmEvent]) -> None:
        await asyncio.to_thread(esc.record, events)
        # on the loop: the evidence snapshot reads the engine, which only the loop may touch
        feed.on_events(events)

    async def clock() -> None:
        while not stop.is_set():
            now = int(time.time() * 1000)
            fired = await asyncio.to_thread(esc.tick, now)
            await asyncio.to_thread(feed.tick, now)
            if fired:
                log.warning("escalated: %s", ", ".join(
                    f"{f.alarm_id} step {f.step} → {'/'.join(f.roles)}" for f in fired))
                await delivery.run_once()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()

    tasks = [asyncio.create_task(clock(), name="escalation-clock"),
             asyncio.create_task(delivery.run(stop), name="outbox-delivery")]
    try:
        yield record
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for n in notifiers.values():
            n.close()
        db.close()


async def run_gateway(site: SiteConfig | CompiledSite, settings: Settings,
                      stop: asyncio.Event | None = None, status_every_s: float = 30) -> None:
    """MQTT ingest → core → InfluxDB until ``stop`` is set (forever by default)."""
    stop = stop or asyncio.Event()
    last_logged: dict[str, int] = {}
    clock = parse_clock(settings.clock)
    async with gateway_session(site, settings) as (core, ingest), \
            serving_api(core, settings):
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(status_every_s):
                    await stop.wait()
            values = snapshot(core, None, ingest)
            # on the gateway's clock, simulated when it runs a scenario (HAZGW_CLOCK)
            await core.writer.put(stats_line(core.enterprise, settings.mqtt.client_id,
                                             values, clock.now_ms()), 1)
            # Log changes, not repetitions: an idle gateway stays quiet.
            if values != last_logged:
                log.info("core: %s", ", ".join(f"{k}={v}" for k, v in values.items()))
                last_logged = values


@asynccontextmanager
async def serving_api(core: Core, settings: Settings) -> AsyncIterator[None]:
    """The REST API on ``settings.api`` while the context is open (nothing without a port)."""
    api = settings.api
    if api.port is None:
        yield
        return
    import uvicorn

    from gateway import influxql
    from gateway.api import create_app
    from gateway.live import LiveFeed
    from gateway.register import Register
    from gateway.report import online_points

    if not api.tokens:
        log.warning("api: no tokens configured (HAZGW_API__TOKENS): every request gets 401")
    db = await asyncio.to_thread(Database, settings.database_url)
    clock = parse_clock(settings.clock)

    def online(start_ms: int, end_ms: int) -> int | None:
        return online_points(settings.influx, core.enterprise, start_ms, end_ms)

    def trend(point: str, minutes: float) -> list[tuple[int, float]] | None:
        try:
            return influxql.trend(settings.influx, core.enterprise, point, clock.now_ms(),
                                  minutes)
        except (OSError, RuntimeError) as exc:
            log.warning("console: no trend of %s from InfluxDB: %s", point, exc)
            return None

    feed = LiveFeed()
    core.alarm_sinks.append(feed)
    app = create_app(core, Register(db), api.tokens, online, feed, trend)
    server = uvicorn.Server(uvicorn.Config(app, host=api.host, port=api.port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(), name="api")
    log.info("api: http://%s:%d (console at /console/, OpenAPI at /docs)", api.host, api.port)
    try:
        yield
    finally:
        feed.close()            # ends the consoles' live streams, so the server can stop
        core.alarm_sinks.remove(feed)
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        db.close()


async def run_edge(site: SiteConfig, edge_id: str, settings: Settings,
                   stop: asyncio.Event | None = None) -> None:
    """Poll the edge's devices and publish to the broker until ``stop`` is set."""
    stop = stop or asyncio.Event()
    mqtt_settings = settings.mqtt.model_copy(update={"client_id": f"hazgw-edge-{edge_id}"})
    agent = site.edges[edge_id]
    capacity = (settings.edge_spool_max_mb * 1024 * 1024 if settings.edge_spool_max_mb
                else spool_capacity(agent))
    spool = Spool(settings.edge_spool_dir / edge_id, capacity)
    log.info("edge %s: spool %s holds up to %.0f MB", edge_id, spool.dir, capacity / 2**20)
    sensor_settings = settings.mqtt.model_copy(
        update={"client_id": f"hazgw-edge-{edge_id}-sensors"})
    async with StoreAndForward(MqttUplink(mqtt_settings), spool) as uplink:
        runner = EdgeRunner(site.enterprise.code, edge_id, agent, uplink, sensor_settings,
                            uplink.stats, parse_clock(settings.clock))
        task = asyncio.create_task(runner.run(), name=f"edge-{edge_id}")
        try:
            await stop.wait()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
