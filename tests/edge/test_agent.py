"""The edge agent's own loops: a publish that fails keeps its readings for the next try."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from edge import wire
from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from tests.waiting import wait_until


class _FailingFirst:
    """An uplink whose first publishes raise. MqttUplink waits rather than fail, so what
    is tested here (an unforeseen error in the uplink) needs a stand-in."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[bytes] = []

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        if topic.endswith("/readings") and self.failures:
            self.failures -= 1
            raise OSError("spool: no space left on device")
        if topic.endswith("/readings"):
            self.sent.append(payload)

    async def close(self) -> None:
        return None


async def test_a_failing_publish_is_said_once_retried_and_loses_no_reading(
        caplog: pytest.LogCaptureFixture) -> None:
    uplink = _FailingFirst(failures=3)
    agent = EdgeAgent("91320582MA1W3K4X5R", "edge-a",
                      EdgeConfig(max_batch_delay_s=0.01, stats_interval_s=0.05), uplink)
    with caplog.at_level(logging.WARNING, logger="edge.supervise"):
        task = asyncio.create_task(agent.run())
        for i in range(5):
            agent.collect(([f"P{i}"], np.array([1000 + i], np.int64), np.array([float(i)]),
                           np.zeros(1, np.uint8), np.zeros(1, np.uint8)))
            await asyncio.sleep(0.01)
        await wait_until(lambda: sum(len(wire.decode(p).ids) for p in uplink.sent) == 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    ids = [i for p in uplink.sent for i in wire.decode(p).ids]
    assert ids == ["P0", "P1", "P2", "P3", "P4"]            # all of them, once, in order
    assert agent.loops.by_name["batcher"].failures == 3
    assert agent.stats().edge_stats["loop_batcher_failures"] == 3
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and said[0].startswith("batcher: failed (OSError")
