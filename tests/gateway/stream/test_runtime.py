"""The core's consumer: messages that arrive while it lingers are evaluated in one step."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from alerting.engine import AlarmEvent
from edge import wire
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.site import load_site
from gateway.stream.core import Core
from gateway.stream.ingest import MessageBuffer
from gateway.stream.runtime import consume
from tests.waiting import wait_until

TOPIC = "mhs/v1/91320582MA1W3K4X5R/edge-01/readings"


T0 = int(time.time() * 1000)      # inside the window of times the core accepts


def message(seq: int) -> tuple[str, bytes]:
    return TOPIC, wire.encode("edge-01", 1, seq, ["GT101"], [T0 + seq], [1.0], [0])


class CountingCore(Core):
    """A core that notes how many messages each step gave it."""

    steps: list[int]

    async def handle(self, messages: list[tuple[str, bytes]]) -> list[AlarmEvent]:
        self.steps.append(len(messages))
        return await super().handle(messages)


async def steps_taken(demo_config_path: Path, linger_s: float, waiting: int,
                      then: int = 2) -> list[int]:
    """Messages per step when ``waiting`` messages are there before the consumer starts,
    and ``then`` more arrive once it has taken them."""
    steps: list[int] = []
    async with BatchingWriter(NullSink()) as writer:
        core = CountingCore(load_site(demo_config_path), writer)
        core.steps = steps
        buffer = MessageBuffer(asyncio.get_running_loop())
        for seq in range(waiting):
            await buffer.put(message(seq))
        stop = asyncio.Event()
        task = asyncio.create_task(consume(core, buffer, stop, linger_s))
        await wait_until(lambda: len(buffer) == 0)          # the consumer has taken them
        for seq in range(waiting, waiting + then):
            await buffer.put(message(seq))
        await wait_until(lambda: sum(steps) == waiting + then)
        stop.set()
        await task
        assert core.stats.readings == waiting + then
    return steps


async def test_under_load_messages_arriving_while_the_consumer_lingers_join_its_step(
        demo_config_path: Path) -> None:
    # two were waiting: it lingers (long, so that the test does not depend on the machine)
    assert await steps_taken(demo_config_path, 1.0, waiting=2) == [4]


async def test_a_lone_message_is_evaluated_at_once(demo_config_path: Path) -> None:
    # a linger it would have to sit out is far beyond wait_until's 10 s: the test would fail
    assert await steps_taken(demo_config_path, 1000.0, waiting=1, then=0) == [1]


async def test_without_linger_each_step_takes_what_is_there(demo_config_path: Path) -> None:
    assert (await steps_taken(demo_config_path, 0.0, waiting=2))[0] == 2
