"""MQTT ingest: paho's network thread fills a bounded buffer that the asyncio core drains.

The buffer bounds messages, not bytes. When it is full the paho thread blocks inside
``on_message``; paho then sends no PUBACK, the broker stops at its in-flight limit and keeps
the rest queued in our persistent session: backpressure instead of loss.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque

import paho.mqtt.client as mqtt

from edge.mqtt import MqttConnection, MqttSettings, Refusals

log = logging.getLogger(__name__)

Message = tuple[str, bytes]

# Mosquitto's count of QoS 1/2 messages it dropped because a client's queue was full: the
# loss that the gateway's persistent session and the shipped queue limits exist to prevent.
BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


class MessageBuffer:
    """A bounded hand-over from one producer thread (or task) to one asyncio consumer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_messages: int = 20_000) -> None:
        self._loop = loop
        self._items: deque[Message] = deque()
        self._slots = threading.Semaphore(max_messages)
        self._ready = asyncio.Event()
        self._waiting = False
        self._closed = False

    def push(self, item: Message) -> None:
        """Add a message from another thread; blocks while the buffer is full."""
        while not self._slots.acquire(timeout=0.5):
            if self._closed:
                return
        self._items.append(item)
        # The consumer raises _waiting before its last look at the deque, so either it sees
        # this item or we see the flag and wake it.
        if self._waiting:
            self._waiting = False
            self._loop.call_soon_threadsafe(self._ready.set)

    async def put(self, item: Message) -> None:
        """Add a message from the event loop itself (in-process uplink); waits when full."""
        while not self._slots.acquire(blocking=False):
            await asyncio.sleep(0.005)
        self._items.append(item)
        self._ready.set()

    async def drain(self, max_items: int) -> list[Message]:
        """Wait for at least one message; take up to ``max_items``."""
        while not self._items:
            self._ready.clear()
            self._waiting = True
            if self._items:
                break
            await self._ready.wait()
        return self.take(max_items)

    def take(self, max_items: int) -> list[Message]:
        """Take up to ``max_items`` without waiting."""
        n = min(max_items, len(self._items))
        return [self._items.popleft() for _ in range(n)]

    def release(self, n: int) -> None:
        """Free the slots of ``n`` processed messages."""
        if n:
            self._slots.release(n)

    def close(self) -> None:
        """Let a blocked producer give up."""
        self._closed = True

    def __len__(self) -> int:
        return len(self._items)


class MqttIngest:
    """Subscribes (QoS 1, persistent session) and pushes every message into a buffer."""

    def __init__(self, s: MqttSettings, topics: list[str], buffer: MessageBuffer) -> None:
        self._buffer = buffer
        self.broker_dropped: int | None = None
        self.conn = MqttConnection("ingest", s, persistent=True,
                                   subscriptions=[(t, 1) for t in topics]
                                   + [(BROKER_DROPPED_TOPIC, 0)],
                                   on_message=self._on_message)

    @property
    def connected(self) -> threading.Event:
        return self.conn.connected

    @property
    def subscribed(self) -> threading.Event:
        return self.conn.subscribed

    @property
    def refusals(self) -> Refusals:
        return self.conn.refusals

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself."""
        self.conn.start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._buffer.close()
        self.conn.stop()

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == BROKER_DROPPED_TOPIC:
            try:
                self.broker_dropped = int(msg.payload)
            except ValueError:
                log.warning("ingest: unreadable %s: %r", msg.topic, msg.payload[:40])
            return
        self._buffer.push((msg.topic, bytes(msg.payload)))
