"""Live updates for the operator console: alarm events pushed to every open console.

``LiveFeed`` is an alarm sink of the core; each console's server-sent-event stream
subscribes with a bounded queue. A console that cannot keep up is not allowed to hold the
alarm path back: its queue is emptied and it is told to ``resync`` (reload the list from the
API), so it never shows a wrong picture and the core never waits. The alarm events
themselves are kept elsewhere (InfluxDB, MQTT, the alarm history): nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from alerting.engine import AlarmEvent
from gateway.alarms.model import AlarmMessage

QUEUE = 256
T = TypeVar("T")


class LiveFeed:
    """Fan-out of alarm events to subscribers."""

    def __init__(self, enterprise: str) -> None:
        self.enterprise = enterprise
        self._subs: set[asyncio.Queue[dict[str, Any]]] = set()
        self.closed = asyncio.Event()
        self.resyncs = 0
        # What every stream polls (the register's version) is asked once per interval for
        # all of them, in a thread of its own: 50 open consoles once tripled the CPU and
        # queued behind the alarm path's database work in the default executor.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="live")
        self._shared: tuple[float, Any] | None = None
        self._shared_lock = asyncio.Lock()

    async def __call__(self, events: list[AlarmEvent]) -> None:
        """The core's alarm sink: never waits."""
        msg = {"type": "alarms", "events": [AlarmMessage.of(self.enterprise, e).model_dump()
                                            for e in events]}
        for q in list(self._subs):
            if q.full():
                while not q.empty():
                    q.get_nowait()
                q.put_nowait({"type": "resync"})
                self.resyncs += 1
            else:
                q.put_nowait(msg)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue that receives every message from now on."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        self._subs.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop receiving."""
        self._subs.discard(q)

    @property
    def subscribers(self) -> int:
        """Open streams."""
        return len(self._subs)

    async def shared(self, fn: Callable[[], T], max_age_s: float) -> T:
        """``fn()``'s value, computed at most once per ``max_age_s`` for all streams."""
        async with self._shared_lock:
            now = time.monotonic()
            if self._shared is None or now - self._shared[0] >= max_age_s:
                value = await asyncio.get_running_loop().run_in_executor(self._pool, fn)
                self._shared = (now, value)
            result: T = self._shared[1]
            return result

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self.closed.set()
        self._pool.shutdown(wait=False)
