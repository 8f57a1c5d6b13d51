"""Supervised loops: a failing iteration is said once per streak, counted, shown in health
and retried with backoff; the recovery is said once; cancellation is never swallowed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import pytest

from edge.supervise import Loops, describe, keep_running, supervised, to_completion


async def until_runs(supervisor: Coroutine[Any, Any, None], runs: list[int], n: int) -> None:
    """Run ``supervisor`` until the work it restarts has started ``n`` times (bounded), then
    cancel it: a supervisor ends only when cancelled."""
    task = asyncio.create_task(supervisor)
    async with asyncio.timeout(10):
        while len(runs) < n:
            await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failure_streak_is_one_line_then_counted_and_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    loops, stop, calls = Loops(), asyncio.Event(), list[int]()

    async def step() -> None:
        calls.append(len(calls))
        if 1 <= len(calls) <= 4:
            raise ConnectionError(f"database away\nSQL: SELECT {len(calls)}")
        if len(calls) >= 7:
            stop.set()

    with caplog.at_level(logging.DEBUG, logger="edge.supervise"):
        async with asyncio.timeout(20):
            await supervised(loops, "outbox", step, stop, 0.01, backoff_max_s=0.05)
    h = loops.by_name["outbox"]
    assert (h.state, h.failures, h.streak, h.iterations) == ("stopped", 4, 0, 7)
    assert h.last_error == "ConnectionError: database away"        # one line, no SQL
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 2
    assert said[0].startswith("outbox: failed (ConnectionError: database away)")
    assert said[1] == "outbox: working again after 4 failed attempt(s)"
    assert loops.stats() == {"loop_outbox_failures": 4, "loop_outbox_failing": 0}


async def test_health_shows_a_failing_loop_while_it_fails() -> None:
    loops, stop = Loops(), asyncio.Event()

    async def step() -> None:
        raise RuntimeError("no")

    task = asyncio.create_task(supervised(loops, "esc", step, stop, 0.01, backoff_max_s=0.02))
    try:
        async with asyncio.timeout(10):
            while loops.by_name.get("esc") is None or loops.by_name["esc"].failures < 3:
                await asyncio.sleep(0.01)
        assert loops.failing() == ["esc"]
        assert loops.health()["esc"]["last_error"] == "RuntimeError: no"
    finally:
        stop.set()
        await task


async def test_cancellation_ends_the_loop() -> None:
    loops, started = Loops(), asyncio.Event()

    async def step() -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(supervised(loops, "slow", step, asyncio.Event(), 1))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loops.by_name["slow"].failures == 0


def test_describe_prefers_the_driver_error() -> None:
    class WrappedError(Exception):
        orig = OSError("connection refused")
    assert describe(WrappedError("(raised as a result of autoflush)\n[SQL: ...]")) == \
        "OSError: connection refused"


async def test_a_long_running_task_that_ends_is_started_again_and_said(
        caplog: pytest.LogCaptureFixture) -> None:
    """A device's poll loop that raises, or returns, is started again (said once per
    streak); cancelling it ends it."""
    loops, runs = Loops(), list[int]()
    forever = asyncio.Event()

    async def run() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ValueError("short reply")
        if len(runs) == 2:
            return
        await forever.wait()

    with caplog.at_level(logging.WARNING, logger="edge.supervise"):
        await until_runs(keep_running(loops, "poll-plc", run, backoff_max_s=0.01), runs, 3)
    h = loops.by_name["poll-plc"]
    assert (h.failures, h.streak, h.last_error) == (2, 2, "RuntimeError: ended by itself")
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["poll-plc: failed"]


async def test_a_task_that_ran_well_for_a_while_starts_a_new_failure_streak() -> None:
    """Its backoff does not keep growing over failures hours apart."""
    loops, runs = Loops(), list[int]()
    forever = asyncio.Event()

    async def run() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ValueError("first")
        if len(runs) == 2:
            await asyncio.sleep(0.1)            # longer than the backoff's cap: ran well
            raise ValueError("much later")
        await forever.wait()

    await until_runs(keep_running(loops, "poll-plc", run, backoff_max_s=0.02), runs, 3)
    h = loops.by_name["poll-plc"]
    assert (h.failures, h.streak, h.last_error) == (2, 1, "ValueError: much later")


async def test_work_awaited_to_completion_outlives_the_callers_cancellation() -> None:
    """An operator action's record being written when the request is cancelled: the write
    runs to its end (whether it landed decides whether the action stands), then the caller
    is told it was cancelled."""
    landed: list[str] = []
    started = asyncio.Event()

    async def write() -> None:
        started.set()
        await asyncio.sleep(0.05)
        landed.append("record")

    caller = asyncio.ensure_future(to_completion(write()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert landed == ["record"]
    # a failing write is the caller's failure, as it was raised
    async def fail() -> None:
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        await to_completion(fail())
