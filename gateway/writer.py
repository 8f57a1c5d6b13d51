"""Batches line protocol by size or age and writes it with concurrent writers and retries.

Backpressure, not loss: ``put`` waits while ``max_pending_batches`` are queued, which stalls the
ingest, which stops acknowledging MQTT messages, so the broker keeps them. Retryable failures
are retried with capped exponential backoff (Retry-After honoured); permanent ones are counted
and their first lines kept as a dead-letter sample.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType

from gateway.influx import LineSink, PermanentError, RetryableError, ThrottledError

log = logging.getLogger(__name__)


@dataclass
class WriterStats:
    """Counters of the writer, exported as self-metrics."""

    points_written: int = 0
    batches_written: int = 0
    retries: int = 0
    throttled: int = 0
    rejected_points: int = 0
    rejected_batches: int = 0
    unwritten_points_at_close: int = 0
    rejected_samples: deque[str] = field(default_factory=lambda: deque(maxlen=10))


class BatchingWriter:
    """Accepts bodies of line protocol; writes them in batches of ~``batch_points``."""

    def __init__(self, sink: LineSink, batch_points: int = 5000, flush_interval_s: float = 0.2,
                 writers: int = 2, max_pending_batches: int = 64,
                 max_backoff_s: float = 10.0, close_timeout_s: float = 30.0) -> None:
        self._sink = sink
        self._batch_points = batch_points
        self._flush_interval = flush_interval_s
        self._n_writers = writers
        self._queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue(max_pending_batches)
        self._buf: list[bytes] = []
        self._buf_points = 0
        self._buf_since = 0.0
        self._queued_points = 0
        self._max_backoff = max_backoff_s
        self._close_timeout = close_timeout_s
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = WriterStats()

    async def __aenter__(self) -> BatchingWriter:
        self._tasks = [asyncio.create_task(self._writer(), name=f"influx-writer-{i}")
                       for i in range(self._n_writers)]
        self._tasks.append(asyncio.create_task(self._ticker(), name="influx-flush-ticker"))
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self._seal()
            await asyncio.wait_for(self._queue.join(), self._close_timeout)
        except TimeoutError:
            pass
        finally:
            # Counted before cancelling: a cancelled writer's finally gives its batch back.
            self.stats.unwritten_points_at_close = self._queued_points + self._buf_points
            if self.stats.unwritten_points_at_close:
                log.error("influx writer: closing with %d points the target did not accept",
                          self.stats.unwritten_points_at_close)
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._sink.close()

    @property
    def pending_points(self) -> int:
        """Points accepted but not yet written (buffered or queued)."""
        return self._buf_points + self._queued_points

    async def put(self, body: bytes, n_points: int) -> None:
        """Add lines; waits when too many batches are already queued."""
        if not body:
            return
        if not self._buf:
            self._buf_since = time.monotonic()
        self._buf.append(body)
        self._buf_points += n_points
        if self._buf_points >= self._batch_points:
            await self._seal()

    async def flush(self) -> None:
        """Write everything accepted so far and wait until it is written."""
        await self._seal()
        await self._queue.join()

    async def _seal(self) -> None:
        if not self._buf:
            return
        body, n = b"".join(self._buf), self._buf_points
        self._buf, self._buf_points = [], 0
        self._queued_points += n
        await self._queue.put((body, n))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval / 2)
            if self._buf and time.monotonic() - self._buf_since >= self._flush_interval:
                await self._seal()

    async def _writer(self) -> None:
        while True:
            body, n = await self._queue.get()
            try:
                await self._write_with_retry(body, n)
            finally:
                self._queued_points -= n
                self._queue.task_done()

    async def _write_with_retry(self, body: bytes, n: int) -> None:
        delay = 0.1
        failing = False
        while True:
            try:
                await self._sink.write(body)
            except PermanentError as exc:
                self.stats.rejected_points += n
                self.stats.rejected_batches += 1
                sample = body[:300].decode(errors="replace")
                self.stats.rejected_samples.append(f"{exc} | {sample}")
                log.error("influx rejected a batch of %d points: %s", n, exc)
                return
            except RetryableError as exc:
                self.stats.retries += 1
                wait = delay
                if isinstance(exc, ThrottledError):
                    self.stats.throttled += 1
                    wait = exc.retry_after_s if exc.retry_after_s is not None else delay
                if not failing:
                    log.warning("influx write failed, retrying: %s", exc)
                    failing = True
                await asyncio.sleep(min(wait, self._max_backoff))
                delay = min(delay * 2, self._max_backoff)
                continue
            if failing:
                log.info("influx writes succeed again")
            self.stats.points_written += n
            self.stats.batches_written += 1
            return
