"""Store and forward: while the uplink broker is unreachable, wire messages go to a bounded
disk spool (edge.spool) that survives a restart of the edge agent; once the broker answers,
the spool is replayed oldest first while live messages keep flowing. The gateway accepts each
(edge, boot, seq) once, so replays arriving after newer live messages are neither lost nor
doubled (gateway.stream.sequence)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from types import TracebackType
from typing import Protocol

import numpy as np

from edge import wire
from edge.config import EdgeConfig
from edge.spool import Spool

log = logging.getLogger(__name__)


def spool_capacity(agent: EdgeConfig, hours: float = 24.0, floor_mb: int = 64) -> int:
    """Bytes that hold ``hours`` of the agent's configured polling load, measured on a wire
    message of its own point ids (MQTT sensors are counted at one reading per second)."""
    rate = sum(len(d.registers) / d.poll_interval_s for d in agent.modbus.values())
    rate += len(agent.mqtt_sensors)
    ids = [pid for _, pid in agent.point_ids()] or ["x"]
    n = len(ids)
    sample = wire.encode("e" * 16, 1_700_000_000_000, 1_000_000, ids,
                         np.full(n, 1_700_000_000_000, np.int64),
                         np.full(n, -12345.678901), np.zeros(n, np.uint8))
    per_reading = len(sample) / n * 1.1     # topic and file overhead
    return max(int(rate * hours * 3600 * per_reading), floor_mb * 1024 * 1024)


class Handle(Protocol):
    """Follows one message sent: paho's ``MQTTMessageInfo`` or ``edge.jetstream.Pending``."""

    def is_published(self) -> bool: ...


class Sender(Protocol):
    """What store and forward sends through: ``edge.mqtt.MqttUplink`` (MQTT QoS 1) or
    ``edge.jetstream.JetStreamUplink`` (JetStream publish with a dedup id)."""

    published: int
    acknowledged: int
    publish_waits: int

    @property
    def is_connected(self) -> bool: ...

    async def send(self, topic: str, payload: bytes) -> Handle: ...

    async def close(self, timeout_s: float = 5.0) -> None: ...


class StoreAndForward:
    """An uplink that spools what it cannot send now."""

    def __init__(self, uplink: Sender, spool: Spool) -> None:
        self.uplink = uplink
        self.spool = spool
        self.replayed = 0
        self.spooled_messages = 0
        self.rescued_messages = 0
        # Live messages handed to paho and not yet acknowledged, oldest first: what a broker
        # outage or an edge restart would otherwise lose from paho's memory.
        self._inflight: deque[tuple[Handle, bytes, int]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def __aenter__(self) -> StoreAndForward:
        self._task = asyncio.create_task(self._replay(), name="edge-spool-replay")
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while self.uplink.is_connected and self._prune() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        self._rescue()                  # unacknowledged: on disk for the next start
        await self.uplink.close(timeout_s=0.5)

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        """Send now if the broker is there, else keep it on disk (the readings it holds are
        counted by the spool; the oldest are dropped, and counted, only when it is full)."""
        body = topic.encode() + b"\n" + payload
        if self.uplink.is_connected:
            info = await self.uplink.send(topic, payload)
            self._inflight.append((info, body, readings))
            self._prune()
            return
        self._rescue()
        self.spool.append(body, readings)
        self.spooled_messages += 1
        self._wake.set()

    def _prune(self) -> int:
        """Forget acknowledged in-flight messages; how many remain."""
        while self._inflight and _acked(self._inflight[0][0]):
            self._inflight.popleft()
        return len(self._inflight)

    def _rescue(self) -> None:
        """Spool what paho holds unacknowledged, before anything newer. paho may still
        deliver some of them after a reconnect; the gateway drops the second copy."""
        self._prune()
        for info, body, readings in self._inflight:
            if not _acked(info):
                self.spool.append(body, readings)
                self.rescued_messages += 1
        if self._inflight:
            self._wake.set()
        self._inflight.clear()

    def stats(self) -> dict[str, int]:
        """Uplink and spool counters for the edge's self-metrics."""
        u = self.uplink
        return {"uplink_connected": int(u.is_connected), "uplink_published": u.published,
                "uplink_acknowledged": u.acknowledged, "uplink_publish_waits": u.publish_waits,
                "spooled_messages": self.spooled_messages, "replayed_messages": self.replayed,
                "rescued_messages": self.rescued_messages,
                "spool_messages": len(self.spool), "spool_readings": self.spool.points,
                "spool_bytes": self.spool.bytes,
                "spool_dropped_readings": self.spool.dropped_points}

    async def close(self) -> None:
        """Stop replaying and close the uplink (what is spooled stays for the next start)."""
        await self.__aexit__(None, None, None)

    async def _replay(self) -> None:
        while True:
            item = self.spool.oldest()
            if item is None or not self.uplink.is_connected:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._wake.wait()
                continue
            batch, body = item
            topic, _, payload = body.partition(b"\n")
            info = await self.uplink.send(topic.decode(), payload)
            # Remove from disk only once the broker has it: a second outage or a crash in
            # between replays it again, which the gateway recognises as a duplicate.
            while not _acked(info) and self.uplink.is_connected:
                await asyncio.sleep(0.01)
            if _acked(info):
                self.spool.remove(batch)
                self.replayed += 1


def _acked(info: object) -> bool:
    """Whether paho saw the PUBACK of a message (False while it could not even send it)."""
    try:
        return bool(info.is_published())  # type: ignore[attr-defined]
    except (RuntimeError, ValueError):
        return False
