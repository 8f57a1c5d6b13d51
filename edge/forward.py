"""Store and forward: while the uplink broker is unreachable, wire messages go to a bounded
disk spool (edge.spool) that survives a restart of the edge agent; once the broker answers,
the spool is replayed oldest first while live messages keep flowing. The gateway accepts each
(edge, boot, seq) once, so replays arriving after newer live messages are neither lost nor
doubled (gateway.sequence)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from edge.mqtt import MqttUplink
from edge.spool import Spool

log = logging.getLogger(__name__)


class StoreAndForward:
    """An uplink that spools what it cannot send now."""

    def __init__(self, uplink: MqttUplink, spool: Spool) -> None:
        self.uplink = uplink
        self.spool = spool
        self.replayed = 0
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
        await self.uplink.close()

    async def publish(self, topic: str, payload: bytes) -> None:
        """Send now if the broker is there, else keep it on disk (the readings it holds are
        counted by the spool; the oldest are dropped, and counted, only when it is full)."""
        if self.uplink.connected:
            await self.uplink.publish(topic, payload)
            return
        self.spool.append(topic.encode() + b"\n" + payload, 1)
        self._wake.set()

    async def close(self) -> None:
        """Stop replaying and close the uplink (what is spooled stays for the next start)."""
        await self.__aexit__(None, None, None)

    async def _replay(self) -> None:
        while True:
            item = self.spool.oldest()
            if item is None or not self.uplink.connected:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                continue
            batch, body = item
            topic, _, payload = body.partition(b"\n")
            info = await self.uplink.send(topic.decode(), payload)
            # Remove from disk only once the broker has it: a second outage or a crash in
            # between replays it again, which the gateway recognises as a duplicate.
            while not _acked(info) and self.uplink.connected:
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
