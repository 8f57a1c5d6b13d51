"""The core's consumer: messages that arrive while it lingers are evaluated in one step."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alerting.engine import AlarmEvent
from edge import wire
from gateway.config import load_site
from gateway.core import Core
from gateway.influx import NullSink
from gateway.ingest import MessageBuffer
from gateway.runtime import consume
from gateway.writer import BatchingWriter
from tests.waiting import wait_until

TOPIC = "mhs/v1/91320582MA1W3K4X5R/edge-01/readings"


def message(seq: int) -> tuple[str, bytes]:
    return TOPIC, wire.encode("edge-01", 1, seq, ["GT101"], [1000 + seq], [1.0], [0])


class CountingCore(Core):
    """A core that notes how many messages each step gave it."""

    steps: list[int]

    async def handle(self, messages: list[tuple[str, bytes]]) -> list[AlarmEvent]:
        self.steps.append(len(messages))
        return await super().handle(messages)


async def steps_taken(demo_config_path: Path, linger_s: float) -> list[int]:
    """Messages per step when one arrives, is taken, and two more follow it."""
    steps: list[int] = []
    async with BatchingWriter(NullSink()) as writer:
        core = CountingCore(load_site(demo_config_path), writer)
        core.steps = steps
        buffer = MessageBuffer(asyncio.get_running_loop())
        stop = asyncio.Event()
        task = asyncio.create_task(consume(core, buffer, stop, linger_s))
        await buffer.put(message(0))
        await wait_until(lambda: len(buffer) == 0)          # the consumer has taken it
        await buffer.put(message(1))
        await buffer.put(message(2))
        await wait_until(lambda: sum(steps) == 3)
        stop.set()
        await task
        assert core.stats.readings == 3
    return steps


async def test_messages_arriving_while_the_consumer_lingers_join_its_step(
        demo_config_path: Path) -> None:
    # a long linger, so that the test does not depend on the machine's speed
    assert await steps_taken(demo_config_path, 1.0) == [3]


async def test_without_linger_the_first_message_is_evaluated_at_once(
        demo_config_path: Path) -> None:
    assert (await steps_taken(demo_config_path, 0.0))[0] == 1
