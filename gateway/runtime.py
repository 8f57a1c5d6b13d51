"""The gateway process: ingest → core → writer, under one task group."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from gateway.config import InfluxSettings, SiteConfig
from gateway.core import AlarmRecord, Core
from gateway.influx import make_sink
from gateway.ingest import MessageBuffer
from gateway.spool import Spool
from gateway.writer import BatchingWriter

log = logging.getLogger(__name__)

MAX_MESSAGES_PER_STEP = 500


def writer_for(s: InfluxSettings) -> BatchingWriter:
    """A batching writer on the sink the settings name, with its spool if one is set."""
    spool = Spool(s.spool_dir, s.spool_max_mb * 1024 * 1024) if s.spool_dir else None
    return BatchingWriter(make_sink(s), batch_points=s.batch_points,
                          flush_interval_s=s.flush_interval_s, writers=s.writers,
                          max_pending_batches=s.max_pending_batches, spool=spool,
                          spool_after_s=s.spool_after_s)


async def consume(core: Core, buffer: MessageBuffer, stop: asyncio.Event) -> None:
    """Until stopped and empty: take what arrived, process it as one batch, free the slots."""
    while not (stop.is_set() and len(buffer) == 0):
        try:
            messages = await asyncio.wait_for(buffer.drain(MAX_MESSAGES_PER_STEP), 0.2)
        except TimeoutError:
            continue
        try:
            await core.handle(messages)
        except Exception:
            # A bug must not stop ingest silently; the messages are counted as dead letters.
            log.exception("core failed on a batch of %d messages", len(messages))
            for topic, payload in messages:
                core.dead_letter(topic, payload, "core error (see log)")
        finally:
            buffer.release(len(messages))


@asynccontextmanager
async def running_core(site: SiteConfig, influx: InfluxSettings, buffer: MessageBuffer,
                       on_alarms: Callable[[list[AlarmRecord]], None] | None = None,
                       ) -> AsyncIterator[Core]:
    """Run the core's consumer while the context is open; flush the writer on exit."""
    async with writer_for(influx) as writer:
        core = Core(site, writer, on_alarms)
        stop = asyncio.Event()
        task = asyncio.create_task(consume(core, buffer, stop), name="core-consumer")
        try:
            yield core
        finally:
            # Process what is already buffered before the writer flushes and closes.
            stop.set()
            await task
