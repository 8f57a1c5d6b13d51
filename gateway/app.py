"""The composition root: the one place where the gateway's parts are put together.

``running_core`` builds the hot path (writer, core, first status) and, given a buffer, runs
its consumer and alarm clock under one TaskGroup; the production process (``run_gateway``:
MQTT ingest, alarm publisher, escalation, API), the all-in-one demo (``gateway.sim.demo``)
and the maintenance teams' kit (``gateway.sim.kit``, which steps the same core itself on a
stepped clock) all start from it. Every timestamp is taken from the one ``Clock`` passed in
(the simulated one under ``HAZGW_CLOCK``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from edge import app as edge_app
from edge import wire
from edge.clock import WALL, Clock, parse_clock
from edge.settings import EdgeSettings
from edge.signing import Verifier
from edge.stats import stats_topic
from edge.supervise import Loops, describe, supervised
from gateway.alarms.publisher import AlarmPublisher, JetStreamAlarms
from gateway.alarms.service import EscalationService
from gateway.influx.schema import anchor_line
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.settings import TOKEN_DIGEST_PREFIX, InfluxSettings, IngestLimits, Settings
from gateway.site import SiteConfig
from gateway.store.models import Database
from gateway.store.register import Register
from gateway.stream.compiled import CompiledSite, as_compiled
from gateway.stream.core import AlarmSink, Core
from gateway.stream.ingest import MessageBuffer, MqttIngest
from gateway.stream.jsingest import JetStreamIngest
from gateway.stream.runtime import (
    LINGER_S,
    Acknowledgements,
    clock_loop,
    consume,
    first_status,
    tune_allocator,
    writer_for,
)
from gateway.stream.selfmetrics import snapshot, stats_line
from gateway.stream.state import StateKeeper, state_path
from gateway.stream.status import DashboardStatus

log = logging.getLogger(__name__)

Ingest = MqttIngest | JetStreamIngest

# how long the stop waits for the last state's writes to be durable before giving it up
FINAL_SAVE_WAIT_S = 15.0


@dataclass
class Running:
    """The hot path as built: the core, its writer and its dashboard status."""

    core: Core
    status: DashboardStatus
    # the stream sequence the restored state covers (JetStream transport), else None
    position: int | None = None

    def status_lines(self, now_ms: int, instance: str | None = None) -> bytes:
        """Dashboard status, and with ``instance`` a ``gateway_stats`` line, at ``now_ms``."""
        body = self.status.lines(now_ms)
        if instance is not None:
            body += stats_line(self.core.enterprise, instance, snapshot(self.core), now_ms)
        return body


@asynccontextmanager
async def running_core(site: SiteConfig | CompiledSite, influx: InfluxSettings | None,
                       buffer: MessageBuffer | None, alarm_sinks: list[AlarmSink] | None = None,
                       clock: Clock = WALL, linger_s: float = LINGER_S,
                       loops: Loops | None = None, limits: IngestLimits | None = None,
                       state: Path | None = None, state_every_s: float = 1.0,
                       signatures: Verifier | None = None, positions: bool = False,
                       ) -> AsyncIterator[Running]:
    """Build the writer (on ``influx``; none: readings are discarded), the core and its
    first status; with a ``buffer``, run the consumer and the alarm clock as named tasks of
    one TaskGroup while the context is open. On exit what is buffered is processed, then the
    writer flushes. Without a buffer the caller drives the core (the test kit). With a
    ``state`` file the core's alarm state is restored from it at start and saved to it every
    ``state_every_s`` and once more when everything is processed and written at the stop."""
    loops = loops or Loops(clock)
    writer = writer_for(influx, loops) if influx is not None \
        else BatchingWriter(NullSink(), loops=loops)
    async with writer:
        core = Core(site, writer, alarm_sinks, clock, loops, limits, signatures)
        if buffer is None:
            yield Running(core, DashboardStatus(core))
            return
        # Everything built so far (config, compiled rules) lives as long as the process: keep
        # it out of the cyclic GC, whose full passes over millions of config objects would
        # otherwise stall the alarm path for hundreds of milliseconds.
        gc.collect()
        gc.freeze()
        tune_allocator()
        # with a state file, messages are acknowledged once a saved state covers them too
        acks = Acknowledgements(buffer, writer, gated=state is not None)
        keeper = StateKeeper(state, core, acks) if state is not None else None
        if keeper is not None:
            keeper.positions = positions    # tokens are stream sequences: saved with it
            await keeper.restore()          # before the first status: it shows the alarms
        status = await first_status(core, writer, clock)
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(consume(core, buffer, stop, linger_s, acks), name="core-consumer")
            tg.create_task(clock_loop(core, stop, status, clock), name="alarm-clock")
            if keeper is not None:
                tg.create_task(supervised(core.loops, "state", keeper.capture, stop,
                                          state_every_s), name="state")
                tg.create_task(supervised(core.loops, "state-writer", keeper.write_step,
                                          stop, 0.0), name="state-writer")
            try:
                yield Running(core, status, keeper.position if keeper else None)
            finally:
                # Process what is already buffered before the writer flushes and closes.
                stop.set()
        if keeper is not None:
            # everything processed is written now: the last word, and its acknowledgements
            # (unless the database is away and there is no spool: then they come again)
            await writer.flush()
            try:
                async with asyncio.timeout(FINAL_SAVE_WAIT_S):
                    await keeper.save()
            except TimeoutError:
                log.error("state: not saved at the stop (what it covers is not durable): "
                          "the broker delivers the unacknowledged messages again")


@asynccontextmanager
async def gateway_session(site: SiteConfig | CompiledSite, settings: Settings
                          ) -> AsyncIterator[tuple[Core, Ingest]]:
    """Ingest (MQTT, or the enterprise's JetStream consumer) feeding the core while the
    context is open; drains, acknowledges and flushes on exit."""
    site = as_compiled(site)
    code = site.enterprise
    buffer = MessageBuffer(asyncio.get_running_loop())
    clock = parse_clock(settings.clock)
    loops = Loops(clock)
    ingest: Ingest
    if settings.transport == "nats":
        if settings.state.dir is None:
            raise ValueError("the nats transport keeps its place in the stream with the "
                             "saved state: set HAZGW_STATE__DIR (hazgw run and hazgw "
                             "cluster use var/state)")
        ingest = JetStreamIngest(settings.nats, code, buffer, loops, settings.mqtt.client_id)
    else:
        ingest = MqttIngest(settings.mqtt, [wire.readings_topic(code, "+"),
                                            stats_topic(code, "+")], buffer)
    publisher: AlarmPublisher | JetStreamAlarms = AlarmPublisher(code, settings.mqtt) \
        if settings.transport == "mqtt" else JetStreamAlarms(code, settings.nats)
    sinks: list[AlarmSink] = [publisher]
    running: list[Core] = []        # for the register's evidence snapshots, once it exists
    feeding = asyncio.Event()       # set at the stop, once what was taken is acknowledged
    async with escalating(site, settings, running, clock, loops) as escalation_sink:
        sinks.append(escalation_sink)
        try:
            async with asyncio.TaskGroup() as tg:
                try:
                    async with running_core(site, settings.influx, buffer, sinks, clock,
                                            settings.ingest_linger_ms / 1000, loops,
                                            settings.limits, _state_file(settings, code),
                                            settings.state.every_s,
                                            settings.signing.verifier(),
                                            positions=isinstance(ingest, JetStreamIngest),
                                            ) as run:
                        core = run.core
                        running.append(core)
                        if isinstance(ingest, JetStreamIngest):
                            # from where the restored state stops, once it is restored
                            ingest.start_at(run.position)
                            tg.create_task(ingest.run(feeding), name="jetstream-ingest")
                        ingest.start()
                        try:
                            yield core, ingest
                        finally:
                            # Take no more: what is buffered is processed, written and
                            # acknowledged before the connection closes; what comes
                            # meanwhile stays unacknowledged and comes to the next process.
                            ingest.pause()
                            # the last snapshot: a clean stop leaves final totals
                            await core.writer.put(stats_line(
                                code, settings.mqtt.client_id,
                                snapshot(core, buffer, ingest), clock.now_ms()), 1)
                finally:
                    feeding.set()
        finally:
            ingest.stop()
            await publisher.close()


def _state_file(settings: Settings, enterprise: str) -> Path | None:
    d = settings.state.dir
    return None if d is None else state_path(d, enterprise, settings.mqtt.client_id)


def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[str], list[tuple[int, float]]],
            ) -> Callable[[str], list[tuple[int, float]]]:
    """``fn`` made callable from a worker thread: it runs on the loop, which owns the
    engine, and the thread waits for its answer."""
    async def run(arg: str) -> list[tuple[int, float]]:
        return fn(arg)

    def call(arg: str) -> list[tuple[int, float]]:
        return asyncio.run_coroutine_threadsafe(run(arg), loop).result(timeout=10)
    return call


@asynccontextmanager
async def escalating(site: CompiledSite, settings: Settings, running: list[Core],
                     clock: Clock = WALL, loops: Loops | None = None,
                     ) -> AsyncIterator[AlarmSink]:
    """The alarm history, the escalation clock, the outbox delivery and the register feed
    (alarms that become register entries) while the context is open; yields the alarm sink
    that feeds them. Their SQL runs in worker threads. The history, occurrences, register
    feed and threshold-change audit run with or without an escalation policy (the daily
    report and the console's history read them); a policy only adds notifications."""
    recent = on_loop(asyncio.get_running_loop(),
                     lambda point: running[0].recent(point) if running else [])
    svc = EscalationService(site, settings, clock, recent)
    stop = asyncio.Event()
    loops = loops or Loops(clock)
    try:
        async with asyncio.TaskGroup() as tg:
            # the database may be away at start: the first step opens it, and says once
            # (with the retry schedule) when it does not answer; ingest does not wait
            tg.create_task(supervised(loops, "escalation-clock", svc.clock_step, stop,
                                      lambda: 1.0 / clock.speed), name="escalation-clock")
            async def delivery_step() -> None:
                await svc.delivery_step()
                if running:         # /health, gateway_stats and the console show it
                    running[0].stats.notifications_failed = svc.failed_notifications
            tg.create_task(supervised(loops, "outbox-delivery", delivery_step, stop, 1.0),
                           name="outbox-delivery")

            async def anchor_step() -> None:
                # the head goes to InfluxDB, beyond the reach of the database's users
                head = await svc.audit_step()
                if head is not None and running:
                    core = running[0]
                    await core.writer.put(anchor_line(core.enterprise, *head,
                                                      clock.now_ms()), 1)
            tg.create_task(supervised(loops, "audit-seal", anchor_step, stop,
                                      settings.audit.seal_every_s), name="audit-seal")
            try:
                yield svc.sink
            finally:
                stop.set()
    finally:
        svc.close()


async def run_gateway(site: SiteConfig | CompiledSite, settings: Settings,
                      stop: asyncio.Event | None = None, status_every_s: float = 30) -> None:
    """MQTT ingest → core → InfluxDB until ``stop`` is set (forever by default)."""
    stop = stop or asyncio.Event()
    last_logged: dict[str, int] = {}
    clock = parse_clock(settings.clock)
    async with gateway_session(site, settings) as (core, ingest), \
            serving_api(core, settings):

        async def stats_step() -> None:
            nonlocal last_logged
            values = snapshot(core, None, ingest)
            # on the gateway's clock, simulated when it runs a scenario (HAZGW_CLOCK)
            await core.writer.put(stats_line(core.enterprise, settings.mqtt.client_id,
                                             values, clock.now_ms()), 1)
            # Log changes, not repetitions: an idle gateway stays quiet.
            if values != last_logged:
                log.info("core: %s", ", ".join(f"{k}={v}" for k, v in values.items()))
                last_logged = values

        await supervised(core.loops, "stats", stats_step, stop, status_every_s)


async def _open_database(url: str, who: str, audit_key: bytes | None = None) -> Database:
    """The database, waiting for it (one line when it does not answer, with the retry
    schedule; one when it does): the process does not end over it."""
    delay, said = 1.0, False
    while True:
        try:
            db = await asyncio.to_thread(Database, url, True, audit_key)
        except Exception as exc:      # driver errors differ by database: all are retried
            if not said:
                log.error("%s: database %s does not answer (%s); retrying every 1–30 s",
                          who, url.split("@")[-1], describe(exc))
                said = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        if said:
            log.warning("%s: database %s answers again", who, url.split("@")[-1])
        return db


@asynccontextmanager
async def serving_api(core: Core, settings: Settings) -> AsyncIterator[None]:
    """The REST API on ``settings.api`` while the context is open (nothing without a port)."""
    api = settings.api
    if api.port is None:
        yield
        return
    import uvicorn

    from gateway.api.app import create_app
    from gateway.api.live import LiveFeed
    from gateway.influx import query as influxql
    from gateway.store.report import online_points

    if not api.tokens:
        log.warning("api: no tokens configured (HAZGW_API__TOKENS): every request gets 401")
    plain = sum(not k.startswith(TOKEN_DIGEST_PREFIX) for k in api.tokens)
    if plain:
        log.warning("api: %d token(s) configured in plaintext: store their sha256 digests "
                    "instead (hazgw token new ROLE NAME prints the line)", plain)
    db = await _open_database(settings.database_url, "api", settings.audit.key_bytes())
    clock = core.clock

    def online(start_ms: int, end_ms: int) -> int | None:
        try:
            return online_points(settings.influx, core.enterprise, start_ms, end_ms)
        except (OSError, RuntimeError) as exc:    # unknown, said so: never a wrong count
            log.warning("report: no online count from InfluxDB: %s", exc)
            return None

    def trend(point: str, minutes: float) -> list[tuple[int, float]] | None:
        try:
            return influxql.trend(settings.influx, core.enterprise, point, clock.now_ms(),
                                  minutes)
        except (OSError, RuntimeError) as exc:
            log.warning("console: no trend of %s from InfluxDB: %s", point, exc)
            return None

    feed = LiveFeed(core.enterprise)
    core.alarm_sinks.append(feed)
    app = create_app(core, Register(db, clock), api.tokens, online, feed, trend,
                     docs=api.docs, max_live_streams=api.max_live_streams)
    server = uvicorn.Server(uvicorn.Config(app, host=api.host, port=api.port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(), name="api")
    log.info("api: http://%s:%d (console at /console/, OpenAPI at /openapi.json%s)", api.host,
             api.port, ", Swagger UI at /docs" if api.docs else "")
    try:
        yield
    finally:
        feed.close()            # ends the consoles' live streams, so the server can stop
        core.alarm_sinks.remove(feed)
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        db.close()


async def run_edge(site: SiteConfig, settings: EdgeSettings,
                   stop: asyncio.Event | None = None) -> None:
    """An edge of a site already loaded (tests and one-box set-ups; an edge box runs
    ``python -m edge``, which loads only its own section)."""
    await edge_app.run_edge(site.enterprise.code, settings.edge_id,
                            site.edges[settings.edge_id], settings, stop)
