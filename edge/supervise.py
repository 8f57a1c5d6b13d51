"""Supervised loops: a loop that must outlive a failure runs one iteration at a time; a
failing iteration is one log line at the start of a failure streak (and one when it ends),
a counter and a health entry, then a retry with backoff. Nothing ends silently.

Each process keeps one ``Loops`` registry; ``/health`` and the self-metrics show each loop's
state, last success and last error. Cancellation (the process stopping) is never caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TypeVar

from edge.clock import WALL, Clock

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 30.0
T = TypeVar("T")


@dataclass
class LoopHealth:
    """What one loop is doing, for ``/health`` and the stats."""

    name: str
    state: str = "starting"          # running, failing, stopped
    iterations: int = 0
    failures: int = 0                # failed iterations since start
    streak: int = 0                  # failed iterations in a row, now
    last_ok_ms: int | None = None
    last_error: str | None = None
    last_error_ms: int | None = None


class Loops:
    """The supervised loops of one process, by name."""

    def __init__(self, clock: Clock = WALL) -> None:
        self.clock = clock
        self.by_name: dict[str, LoopHealth] = {}

    def add(self, name: str) -> LoopHealth:
        """Register a loop (a name is one loop: registering it again starts it afresh)."""
        h = self.by_name[name] = LoopHealth(name)
        return h

    def ok(self, h: LoopHealth) -> None:
        """One iteration succeeded; the end of a failure streak is said once."""
        if h.streak:
            log.warning("%s: working again after %d failed attempt(s)", h.name, h.streak)
        h.iterations += 1
        h.streak = 0
        h.state = "running"
        h.last_ok_ms = self.clock.now_ms()

    def failed(self, h: LoopHealth, exc: BaseException, retry_s: float) -> None:
        """One iteration failed; the first of a streak is said (one line), the rest counted."""
        h.iterations += 1
        h.failures += 1
        h.streak += 1
        h.state = "failing"
        h.last_error = describe(exc)
        h.last_error_ms = self.clock.now_ms()
        if h.streak == 1:
            log.error("%s: failed (%s); retrying with backoff up to %.0f s, said again when it "
                      "works", h.name, h.last_error, BACKOFF_MAX_S)
            log.debug("%s: failure", h.name, exc_info=exc)
        else:
            log.debug("%s: failed again (%d in a row, next in %.1f s): %s", h.name, h.streak,
                      retry_s, h.last_error)

    def failing(self) -> list[str]:
        """Names of the loops failing now."""
        return [n for n, h in self.by_name.items() if h.state == "failing"]

    def health(self) -> dict[str, dict[str, object]]:
        """Every loop's entry, for ``/health``."""
        return {n: asdict(h) for n, h in self.by_name.items()}

    def stats(self) -> dict[str, int]:
        """Integer self-metrics: failures per loop and whether it is failing now."""
        out: dict[str, int] = {}
        for n, h in self.by_name.items():
            key = n.replace("-", "_")
            out[f"loop_{key}_failures"] = h.failures
            out[f"loop_{key}_failing"] = int(h.state == "failing")
        return out


def describe(exc: BaseException) -> str:
    """One line about an exception: its type and the first line of its message, from the
    driver's own error where a wrapper holds one (SQLAlchemy's ``orig``), which names the
    cause where the wrapper's text names the SQL."""
    inner = getattr(exc, "orig", None)
    cause = inner if isinstance(inner, BaseException) else exc
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first}"[:300]


def _backoff(h: LoopHealth, base_s: float, max_s: float) -> float:
    """The wait before the next attempt: ``base_s`` doubled with each failure in a row."""
    return min(max_s, base_s * 2.0 ** min(h.streak, 16))


async def supervised(loops: Loops, name: str, step: Callable[[], Awaitable[object]],
                     stop: asyncio.Event, every_s: float | Callable[[], float],
                     final_step: bool = False, backoff_max_s: float = BACKOFF_MAX_S) -> None:
    """Run ``step`` every ``every_s`` (seconds, or a function giving them) until ``stop``;
    a failing step is retried after ``every_s`` × 2, × 4, ... up to ``backoff_max_s``. With
    ``final_step`` one more step runs once ``stop`` is set (a loop that writes status gets
    its final say)."""
    h = loops.add(name)
    h.state = "running"
    while True:
        period = every_s() if callable(every_s) else every_s
        wait = period
        final = stop.is_set()
        if final and not final_step:
            break
        try:
            await step()
        except Exception as exc:    # every failure is reported and retried, never fatal
            wait = _backoff(h, max(period, 0.1), backoff_max_s)
            loops.failed(h, exc, wait)
        else:
            loops.ok(h)
        if final:
            break
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await stop.wait()
    h.state = "stopped"


async def until_done(loops: Loops, h: LoopHealth, work: Callable[[], Awaitable[T]]) -> T:
    """Run one unit of a loop's work (a batch to write) until it succeeds: a failure is
    reported as ``Loops.failed`` says and retried with backoff, so that the unit is neither
    skipped nor the loop ended by a bug or an unforeseen error."""
    while True:
        try:
            result = await work()
        except Exception as exc:
            wait = _backoff(h, 0.1, BACKOFF_MAX_S)
            loops.failed(h, exc, wait)
            await asyncio.sleep(wait)
            continue
        loops.ok(h)
        return result


async def keep_running(loops: Loops, name: str, run: Callable[[], Awaitable[object]],
                       backoff_max_s: float = BACKOFF_MAX_S) -> None:
    """Run a long-running ``run`` (a device's poll loop) and start it again whenever it
    ends, by an error (said once per streak, counted, with backoff) or by returning (said:
    it should not), until cancelled."""
    h = loops.add(name)
    while True:
        h.state = "running"
        started = time.monotonic()
        try:
            await run()
            exc: Exception = RuntimeError("ended by itself")
        except Exception as e:
            exc = e
        if h.streak and time.monotonic() - started > backoff_max_s:
            loops.ok(h)         # it ran well for a while: this failure starts a new streak
        wait = _backoff(h, 0.5, backoff_max_s)
        loops.failed(h, exc, wait)
        await asyncio.sleep(wait)


async def to_completion(work: Awaitable[None]) -> None:
    """Await ``work`` to its end even when the caller is cancelled meanwhile (a record being
    written is not abandoned half-way: whether it landed decides whether the action stands);
    the cancellation is passed on afterwards."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or the exception itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in leaves(e)]
    return [exc]


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[object]], what: str) -> int:
    """Run ``main(stop)`` until it returns; SIGTERM (what Docker and systemd send) and Ctrl-C
    set ``stop``, so the process drains, acknowledges and closes before it ends. What escapes
    ``main`` ends the process with exit status 1 and one line naming the reason, so that a
    supervisor restarts it; 0 otherwise."""
    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        asyncio.run(run())
    except Exception as exc:
        reasons = "; ".join(describe(e) for e in leaves(exc))
        log.critical("%s stopped: %s", what, reasons)
        log.debug("%s stopped", what, exc_info=exc)
        return 1
    return 0
