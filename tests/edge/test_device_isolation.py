"""One of three devices dies: the other two keep their poll period, the dead one goes bad
with one offline event, is retried no more than once per backoff step (counted at the
device's side of the network by a relay), and recovers by itself when it comes back.

Each device is a process of its own (tests.edge.device_process), killed by its PID."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from edge import wire
from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from edge.wire import Quality
from gateway.sim.ports import free_port
from tests.edge.device_process import VALUES, device_map
from tests.edge.relay import CountingRelay
from tests.waiting import wait_until

INTERVAL = 0.25
CAP = 2.0


def start_device(port: int) -> subprocess.Popen[str]:
    """A device process, once it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.edge.device_process", str(port)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@contextmanager
def device_process(port: int) -> Iterator[subprocess.Popen[str]]:
    proc = start_device(port)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


class Capture:
    """The uplink: keeps every decoded reading batch."""

    def __init__(self) -> None:
        self.batches: list[wire.WireBatch] = []

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        if topic.endswith("/readings"):
            self.batches.append(wire.decode(payload))

    async def close(self) -> None:
        pass

    def samples(self, point: str, since_ms: int, until_ms: int) -> tuple[list[int], list[int]]:
        """(ts, quality) of one point's samples taken in [since, until)."""
        ts: list[int] = []
        q: list[int] = []
        for b in self.batches:
            mask = (np.asarray(b.ids) == point) & (b.ts_ms >= since_ms) & (b.ts_ms < until_ms)
            ts += b.ts_ms[mask].tolist()
            q += b.quality[mask].tolist()
        return ts, q


def backoff_steps(n: int, offline_after: int = 3) -> list[float]:
    """The poller's shortest waits between attempts after 1, 2, ... failed polls: the poll
    interval until the device is offline, then twice as long each time, up to the cap."""
    return [INTERVAL if k < offline_after else min(INTERVAL * 2 ** (k - offline_after + 1),
                                                    CAP) for k in range(1, n + 1)]


async def test_a_dead_device_does_not_disturb_the_others_and_recovers_alone(
        caplog: pytest.LogCaptureFixture) -> None:
    ports = {name: free_port() for name in ("a", "b", "c")}
    relay = CountingRelay(free_port(), ports["c"])
    await relay.start()
    over = {"poll_interval_s": INTERVAL, "timeout_s": 0.5, "reconnect_max_s": CAP}
    cfg = EdgeConfig(modbus={"a": device_map(ports["a"], "a_", **over),
                            "b": device_map(ports["b"], "b_", **over),
                            "c": device_map(relay.port, "c_", **over)},
                    max_batch_delay_s=0.1)
    uplink = Capture()
    runner = EdgeAgent("E", "edge-iso", cfg, uplink)
    poller_c = runner.pollers[2]
    with caplog.at_level(logging.INFO, logger="edge.poller"), \
            device_process(ports["a"]), device_process(ports["b"]):
        c = start_device(ports["c"])
        task = asyncio.create_task(runner.run())
        try:
            await wait_until(lambda: poller_c.stats.polls_ok >= 4, 10)
            c.kill()                                    # the device loses power
            c.wait(10)
            killed = time.monotonic()
            killed_ms = int(time.time() * 1000)
            await wait_until(lambda: poller_c.online is False, 5)
            await asyncio.sleep(6)
            restarted_ms = int(time.time() * 1000)
            down_connections = [t - killed for t in relay.connections if t > killed]
            with device_process(ports["c"]):
                await wait_until(lambda: poller_c.online is True, 2 * CAP + 5)
                await wait_until(lambda: poller_c.stats.polls_ok >= 8, 5)
                await asyncio.sleep(2 * INTERVAL + cfg.max_batch_delay_s)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await relay.stop()
            c.kill()
            c.wait(10)
            if c.stdout is not None:
                c.stdout.close()              # else the GC reports the pipe in a later test

    # The two live devices kept their period while c was down, every poll good.
    for name in ("a", "b"):
        ts, q = uplink.samples(f"{name}_level", killed_ms, restarted_ms)
        gaps = np.diff(ts) / 1000
        assert len(gaps) >= 20
        assert np.all(np.abs(gaps - INTERVAL) <= 0.1 * INTERVAL), gaps
        assert set(q) == {Quality.GOOD}

    # c: every sample while down says "no answer" (no old value), one offline event, one
    # recovery.
    ts, q = uplink.samples("c_level", killed_ms + 1000, restarted_ms)
    assert len(ts) >= 5 and set(q) == {Quality.STALE}
    messages = [r.message for r in caplog.records if r.message.startswith("device c ")]
    assert sum("offline" in m for m in messages) == 1
    assert sum(" online" in m for m in messages) == 2        # at start and on recovery
    assert poller_c.offline_events == 1
    # each of c's points ends on its true value (the newest sample of each; the newest batch
    # may hold only a's or b's samples when the polls fall into different batches)
    got = {pid: v for b in uplink.batches
           for pid, v in zip(b.ids, b.value.tolist(), strict=True) if pid.startswith("c_")}
    assert got == {f"c_{k}": v for k, v in VALUES.items()}

    # At most one connection per backoff step, and it did keep trying.
    gaps = np.diff(down_connections)
    steps = backoff_steps(len(gaps))
    assert len(down_connections) >= 4
    assert all(g >= s * 0.95 for g, s in zip(gaps, steps, strict=True)), (gaps, steps)
