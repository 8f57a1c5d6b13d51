"""The hot path's loops: the consumer (buffer → core → writer) and the alarm clock, and what
they are built with. ``gateway.app`` runs them."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import time

from edge.clock import WALL, Clock
from edge.spool import Spool
from edge.supervise import Loops, supervised
from gateway.influx.targets import make_sink
from gateway.influx.writer import BatchingWriter
from gateway.settings import InfluxSettings
from gateway.stream.core import Core
from gateway.stream.ingest import MessageBuffer
from gateway.stream.status import DashboardStatus

log = logging.getLogger(__name__)

# ~50 000 readings per step at most: bigger steps save little CPU and add alarm latency
MAX_MESSAGES_PER_STEP = 100
TICK_S = 1.0
# Under load, wait this long for more messages to join a step: the engine's cost per step is
# ~0.8 ms whatever its size, which at a few messages a step was most of the core's CPU under
# load (see Settings.ingest_linger_ms).
LINGER_S = 0.02
HEALTH_EVERY_S = 10.0
FIRST_STATUS_WAIT_S = 10.0


def tune_allocator() -> None:
    """Keep the alerting engine's temporaries on the heap, with a bound on what stays.

    Each batch allocates numpy temporaries of up to a few MB. Served by mmap (glibc does so
    for large blocks until its adaptive threshold grows), each is page-faulted in and
    zeroed anew, which more than halves the engine's throughput (1.7 vs 3.8–4.1 M
    readings/s at 100 000 points, ``make bench``). A fixed 1 MB mmap threshold keeps the
    100k-row arrays on the heap, and a 16 MB trim threshold bounds what the heap keeps once
    they are freed: resident memory rises from ~1.65 to ~1.7–2.1 KB per point at 100 000
    points (``bench.memory``, noisy). Linux/glibc only; elsewhere nothing happens.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1024 * 1024)         # M_MMAP_THRESHOLD
        libc.mallopt(-1, 16 * 1024 * 1024)    # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def writer_for(s: InfluxSettings, loops: Loops | None = None) -> BatchingWriter:
    """A batching writer on the sink the settings name, with its spool if one is set; its
    loops join ``loops`` (the process's, shown in /health)."""
    spool = Spool(s.spool_dir, s.spool_max_mb * 1024 * 1024) if s.spool_dir else None
    return BatchingWriter(make_sink(s), batch_points=s.batch_points,
                          flush_interval_s=s.flush_interval_s, writers=s.writers,
                          max_pending_batches=s.max_pending_batches, spool=spool,
                          spool_after_s=s.spool_after_s, loops=loops)


class Acknowledgements:
    """When processed messages are acknowledged to the broker.

    Without a state file, once what their step produced is written or spooled. With one
    (``gated``), once moreover a saved state covers their step: ``StateKeeper.capture``
    takes them with its snapshot, and they are acknowledged once that snapshot (or a newer
    one) is on disk. After a crash
    the restored alarm state and what the broker delivers again then meet exactly: every
    message the state has seen was acknowledged or is dropped as a duplicate (its readings
    and events are durable), and every one it has not seen comes again and is evaluated
    from the state it found, so that its alarm events are written again alike (InfluxDB
    keeps one point per series and time) and none is missing.
    """

    def __init__(self, buffer: MessageBuffer, writer: BatchingWriter, gated: bool) -> None:
        self.buffer = buffer
        self.writer = writer
        self.gated = gated
        self.waiting: list[int] = []

    def processed(self, tokens: list[int]) -> None:
        """The tokens of a step just processed (called under the core's step lock)."""
        if not tokens:
            return
        if self.gated:
            self.waiting.extend(tokens)
        else:
            self.writer.mark(functools.partial(self.buffer.ack, tokens))

    def take(self) -> list[int]:
        """What a snapshot taken now covers (under the step lock)."""
        tokens, self.waiting = self.waiting, []
        return tokens


async def consume(core: Core, buffer: MessageBuffer, stop: asyncio.Event,
                  linger_s: float = LINGER_S, acks: Acknowledgements | None = None) -> None:
    """Until stopped and empty: take what arrived (lingering ``linger_s`` for more when
    several were waiting), process it as one batch, free the slots."""
    acks = acks or Acknowledgements(buffer, core.writer, gated=False)
    while not (stop.is_set() and len(buffer) == 0):
        try:
            async with asyncio.timeout(0.2):
                messages = await buffer.drain(MAX_MESSAGES_PER_STEP)
        except TimeoutError:
            continue
        # Linger only under load: a lone message (light load) is evaluated at once, with
        # nothing added to its alarms' latency; several waiting mean more are coming.
        if linger_s and 1 < len(messages) < MAX_MESSAGES_PER_STEP and not stop.is_set():
            await asyncio.sleep(linger_s)
            messages += buffer.take(MAX_MESSAGES_PER_STEP - len(messages))
        async with core.step_lock:
            try:
                await core.handle(messages)      # isolates a guilty message itself
            except Exception:
                # A bug must not stop ingest silently; the messages are counted as dead
                # letters.
                log.exception("core failed on a batch of %d messages", len(messages))
                for topic, payload in messages:
                    core.dead_letter(topic, payload, "core error (see log)", "core_error")
            finally:
                acks.processed(buffer.release(len(messages)))


async def clock_loop(core: Core, stop: asyncio.Event, status: DashboardStatus,
                     time_source: Clock = WALL) -> None:
    """Alarm timers every (simulated) second; alarm-system health and dashboard status
    every ten real seconds and once more at the stop. Supervised: a failing tick is said
    once, counted and retried."""
    next_health = time.monotonic() + HEALTH_EVERY_S

    async def step() -> None:
        nonlocal next_health
        now_ms = time_source.now_ms()
        await core.tick(now_ms)
        if time.monotonic() >= next_health or stop.is_set():
            next_health = time.monotonic() + HEALTH_EVERY_S
            body = status.lines(now_ms)
            await core.writer.put(body, body.count(b"\n"))

    await supervised(core.loops, "alarm-clock", step, stop,
                     lambda: TICK_S / time_source.speed, final_step=True)


async def first_status(core: Core, writer: BatchingWriter, time_source: Clock,
                       ) -> DashboardStatus:
    """Prepare the dashboard status and write its first lines, every point's limits among
    them, before the caller starts ingest: a dashboard has them from the start, and at
    100 000 points their 400 000 field values do not land on InfluxDB in the middle of the
    load. Waits for the write at most ``FIRST_STATUS_WAIT_S`` (the database may be down)."""
    # prepared off the loop: at 100 000 points the limits' lines take a moment to format
    status = await asyncio.to_thread(DashboardStatus, core)
    body = status.lines(time_source.now_ms())
    await writer.put(body, body.count(b"\n"))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(FIRST_STATUS_WAIT_S):
            await writer.flush()
    return status
