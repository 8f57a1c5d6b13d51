"""Batches line protocol by size or age and writes it with concurrent writers and retries.

Backpressure, not loss: without a spool, ``put`` waits while ``max_pending_batches`` are
queued, which stalls the ingest, which stops acknowledging MQTT messages, so the broker keeps
them. With a spool, a full queue spills to disk instead of stalling the alarm path, a batch
that keeps failing for ``spool_after_s`` goes to disk, later batches follow it there directly
while the target is down, and a replay task writes the spool back oldest first once the target
answers again; what is still unwritten at close is spooled too and replayed after a restart.
Retryable failures back off exponentially (Retry-After honoured); permanent ones are counted and
their first lines kept as a dead-letter sample.

Durability is tracked per batch, in the order the batches were sealed: ``mark(callback)``
calls back once everything put before it is written to the target, spooled to disk, or
refused by the target for good. The ingest acknowledges its MQTT messages that way, so
nothing is acknowledged to the broker that a crash could lose. With a spool, an attempt that
has not finished within ``spool_after_s`` (a hung or paused database) gets a copy in the
spool at once, so that it is durable, and the write goes on: if it lands, the copy is
dropped, else the replay writes it. InfluxDB stores a point once per series and time, so a
batch written twice changes nothing.

Its own tasks are supervised loops of the process (``edge.supervise``, shown in ``/health``):
an unforeseen error while writing a batch is said once, counted and retried with that batch,
so that no writer ends silently and no batch is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from edge.spool import Spool
from edge.supervise import LoopHealth, Loops, supervised, until_done
from gateway.influx.targets import LineSink, PermanentError, RetryableError, ThrottledError

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
    split_batches: int = 0        # refused whole and written again as halves
    spooled_points: int = 0
    replayed_points: int = 0
    unwritten_points_at_close: int = 0
    slow_writes: int = 0            # batches spooled because their write took too long
    write_latency_ms: float = 0.0   # moving average of a batch's write, retries included
    rejected_samples: deque[str] = field(default_factory=lambda: deque(maxlen=10))


class _GiveUpError(Exception):
    """The batch went to the spool instead of the target."""


class BatchingWriter:
    """Accepts bodies of line protocol; writes them in batches of ~``batch_points``."""

    def __init__(self, sink: LineSink, batch_points: int = 5000, flush_interval_s: float = 0.2,
                 writers: int = 2, max_pending_batches: int = 64,
                 max_backoff_s: float = 10.0, close_timeout_s: float = 30.0,
                 spool: Spool | None = None, spool_after_s: float = 2.0,
                 loops: Loops | None = None) -> None:
        self._sink = sink
        self.loops = loops or Loops()
        self._batch_points = batch_points
        self._flush_interval = flush_interval_s
        self._n_writers = writers
        self._queue: asyncio.Queue[tuple[bytes, int, int]] = asyncio.Queue(max_pending_batches)
        self._buf: list[bytes] = []
        self._buf_points = 0
        self._buf_since = 0.0
        self._queued_points = 0
        self._max_backoff = max_backoff_s
        self._close_timeout = close_timeout_s
        self._spool = spool
        self._spool_after = spool_after_s
        self._target_down = False
        self._spool_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._replay_delay = 0.2
        self.stats = WriterStats()
        # batches are numbered 1, 2, ... as sealed; every one up to _durable is written,
        # spooled or refused; marks wait, in order, for the number they need
        self._sealed = 0
        self._durable = 0
        self._finished: set[int] = set()
        self._marks: deque[tuple[int, Callable[[], None]]] = deque()
        self._held: set[int] = set()    # spooled copies of writes still under way
        self._buf_events = False         # the buffer holds alarm events
        self._with_events: set[int] = set()   # batches (by number) that hold alarm events

    async def __aenter__(self) -> BatchingWriter:
        never = asyncio.Event()      # these loops end when cancelled at close
        self._tasks = [asyncio.create_task(self._writer(self.loops.add(f"influx-writer-{i}")),
                                           name=f"influx-writer-{i}")
                       for i in range(self._n_writers)]
        self._tasks.append(asyncio.create_task(
            supervised(self.loops, "influx-flush", self._tick, never, self._flush_interval / 2),
            name="influx-flush"))
        if self._spool is not None:
            self._tasks.append(asyncio.create_task(
                supervised(self.loops, "influx-replay", self._replay_one, never, 0.0),
                name="influx-replay"))
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self._seal()
            async with asyncio.timeout(self._close_timeout):
                await self._queue.join()
        except TimeoutError:
            pass
        finally:
            for t in self._tasks:
                t.cancel()
            # a cancelled writer spools (or counts) the batch it held
            await asyncio.gather(*self._tasks, return_exceptions=True)
            while not self._queue.empty():
                body, n, k = self._queue.get_nowait()
                self._give_up(body, n, k)
            if self._buf:
                self._sealed += 1
                if self._buf_events:
                    self._with_events.add(self._sealed)
                self._give_up(b"".join(self._buf), self._buf_points, self._sealed)
            if self.stats.unwritten_points_at_close:
                log.error("influx writer: closing with %d points the target did not accept "
                          "and no spool could keep", self.stats.unwritten_points_at_close)
            await self._sink.close()

    @property
    def pending_points(self) -> int:
        """Points accepted but not yet written (buffered, queued or spooled)."""
        spooled = self._spool.points if self._spool is not None else 0
        return self._buf_points + self._queued_points + spooled

    @property
    def spool(self) -> Spool | None:
        """The disk spool, if any."""
        return self._spool

    async def put(self, body: bytes, n_points: int, alarm_events: bool = False) -> None:
        """Add lines; waits when too many batches are already queued. A batch with
        ``alarm_events`` is the last a full spool gives up."""
        if not body:
            return
        if not self._buf:
            self._buf_since = time.monotonic()
        if alarm_events:
            self._buf_events = True
        self._buf.append(body)
        self._buf_points += n_points
        if self._buf_points >= self._batch_points:
            await self._seal()

    def mark(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the loop) once everything put so far is written, spooled or
        refused for good: at once if it already is; never if it is lost (no spool and the
        target down at close), so that what it acknowledges is redelivered."""
        target = self._sealed + (1 if self._buf else 0)
        if target <= self._durable:
            callback()
        else:
            self._marks.append((target, callback))

    def _finish(self, k: int) -> None:
        """Batch ``k`` is durable (or refused for good): call back the marks it completes."""
        self._with_events.discard(k)
        self._finished.add(k)
        while self._durable + 1 in self._finished:
            self._durable += 1
            self._finished.discard(self._durable)
        while self._marks and self._marks[0][0] <= self._durable:
            _, callback = self._marks.popleft()
            try:
                callback()
            except Exception:       # an acknowledgement that fails must not stop writing
                log.exception("influx writer: a durability callback failed")

    async def flush(self) -> None:
        """Write everything accepted so far and wait until it is written or spooled."""
        await self._seal()
        await self._queue.join()

    async def drained(self, timeout_s: float) -> bool:
        """Flush, then wait (bounded) until the spool is empty too."""
        await self.flush()
        deadline = time.monotonic() + timeout_s
        while self._spool is not None and len(self._spool) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._spool is None or len(self._spool) == 0

    async def _seal(self) -> None:
        if not self._buf:
            return
        body, n = b"".join(self._buf), self._buf_points
        self._buf, self._buf_points = [], 0
        self._sealed += 1
        k = self._sealed
        if self._buf_events:
            self._with_events.add(k)
            self._buf_events = False
        if self._spool is not None and self._queue.full():
            # The database is behind (a compaction, a slow disk): spill to the spool rather
            # than stall the caller, which would delay the alarms evaluated after this batch.
            self._give_up(body, n, k)
            return
        self._queued_points += n
        await self._queue.put((body, n, k))

    async def _tick(self) -> None:
        if self._buf and time.monotonic() - self._buf_since >= self._flush_interval:
            await self._seal()

    def _give_up(self, body: bytes, n: int, k: int) -> None:
        """Batch ``k`` cannot be written now: to the spool (durable), or counted as
        unwritten (and never marked durable)."""
        if self._spool is not None:
            self._spool.append(body, n, keep=k in self._with_events)
            self.stats.spooled_points += n
            self._spool_ready.set()
            self._finish(k)
        else:
            self.stats.unwritten_points_at_close += n

    async def _writer(self, h: LoopHealth) -> None:
        h.state = "running"
        while True:
            body, n, k = await self._queue.get()
            try:
                await until_done(self.loops, h, functools.partial(self._write_batch, body, n, k))
            finally:
                self._queued_points -= n
                self._queue.task_done()

    async def _write_batch(self, body: bytes, n: int, k: int) -> None:
        held = False        # a copy is in the spool already (the write was slow)
        try:
            if self._target_down and self._spool is not None:
                # The replay task probes the target; queueing behind it keeps order.
                raise _GiveUpError
            if self._spool is None:
                await self._write_with_retry(body, n, None)
            else:
                held = await self._write_or_hold(body, n, k)
                if held:
                    return
            self._finish(k)
        except _GiveUpError:
            if not held:
                self._give_up(body, n, k)
        except asyncio.CancelledError:
            if not held:
                self._give_up(body, n, k)
            raise

    async def _write_or_hold(self, body: bytes, n: int, k: int) -> bool:
        """Write; should the write take longer than ``spool_after_s`` (a paused or hung
        database), spool a copy so that the batch is durable now (and its messages can be
        acknowledged), and let the write go on: if it lands, the copy is dropped again;
        if not, the replay writes it. True when a copy was spooled."""
        attempt = asyncio.ensure_future(self._write_with_retry(body, n, self._spool_after))
        try:
            done, _ = await asyncio.wait({attempt}, timeout=self._spool_after)
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        if done:
            attempt.result()           # raises _GiveUpError after spool_after_s of failures
            return False
        assert self._spool is not None
        copy = self._spool.append(body, n, keep=k in self._with_events)
        self._held.add(copy.seq)       # the replay leaves it alone while the write goes on
        self.stats.spooled_points += n
        self.stats.slow_writes += 1
        self._finish(k)
        try:
            await attempt
            self._spool.remove(copy)   # it landed: the replay need not write it again
            self.stats.spooled_points -= n
        except _GiveUpError:
            self._spool_ready.set()    # the copy waits for the replay
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        finally:
            self._held.discard(copy.seq)
        return True

    async def _write_with_retry(self, body: bytes, n: int, give_up_after_s: float | None,
                                ) -> None:
        """Write until success or a permanent error; _GiveUpError after ``give_up_after_s``."""
        delay = 0.1
        started = time.monotonic()
        while True:
            try:
                await self._sink.write(body)
            except PermanentError as exc:
                lines = body.count(b"\n")
                if exc.rejected is None and lines > 1:
                    # Refused whole (InfluxDB 2.x refuses a request for one bad line): the
                    # halves are written apart until the bad lines stand alone, so one
                    # hostile line costs log2(n) requests, not a batch of good readings.
                    await self._write_halves(body, n, lines, give_up_after_s)
                    return
                # a partial write stored the rest: only the refused lines count as rejected
                rejected = n if exc.rejected is None else min(exc.rejected, n)
                self.stats.rejected_points += rejected
                self.stats.points_written += n - rejected
                self.stats.rejected_batches += 1
                sample = body[:300].decode(errors="replace")
                self.stats.rejected_samples.append(f"{exc} | {sample}")
                log.error("influx rejected %d of a batch of %d points: %s", rejected, n, exc)
                return
            except RetryableError as exc:
                self.stats.retries += 1
                wait = delay
                if isinstance(exc, ThrottledError):
                    self.stats.throttled += 1
                    wait = exc.retry_after_s if exc.retry_after_s is not None else delay
                if not self._target_down:
                    log.warning("influx write failed, retrying: %s", exc)
                    self._target_down = True
                waited = time.monotonic() - started
                if give_up_after_s is not None and waited >= give_up_after_s:
                    raise _GiveUpError from exc
                await asyncio.sleep(min(wait, self._max_backoff))
                delay = min(delay * 2, self._max_backoff)
                continue
            if self._target_down:
                log.info("influx writes succeed again")
                self._target_down = False
            ms = (time.monotonic() - started) * 1000
            lat = self.stats.write_latency_ms
            self.stats.write_latency_ms = ms if not self.stats.batches_written \
                else 0.8 * lat + 0.2 * ms
            self.stats.points_written += n
            self.stats.batches_written += 1
            return

    async def _write_halves(self, body: bytes, n: int, lines: int,
                            give_up_after_s: float | None) -> None:
        """``body`` written as two halves (points shared out by lines, one point a line)."""
        self.stats.split_batches += 1
        parts = body.splitlines(keepends=True)
        half = len(parts) // 2
        n_first = round(n * half / lines)
        await self._write_with_retry(b"".join(parts[:half]), n_first, give_up_after_s)
        await self._write_with_retry(b"".join(parts[half:]), n - n_first, give_up_after_s)

    async def _replay_one(self) -> None:
        """Write the oldest spooled batch back if the target answers (else back off), or
        wait a moment for one."""
        assert self._spool is not None
        spool = self._spool
        item = spool.oldest()
        if item is None:
            self._spool_ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._spool_ready.wait()
            return
        batch, body = item
        if batch.seq in self._held:            # its own write is still under way
            await asyncio.sleep(0.1)
            return
        written_before = self.stats.points_written
        try:
            await self._write_with_retry(body, batch.points, 0.0)
        except _GiveUpError:
            await asyncio.sleep(self._replay_delay)
            self._replay_delay = min(self._replay_delay * 2, self._max_backoff)
            return
        self._replay_delay = 0.2
        if self.stats.points_written > written_before:
            self.stats.replayed_points += batch.points
        spool.remove(batch)
