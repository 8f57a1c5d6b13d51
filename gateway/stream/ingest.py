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
from paho.mqtt.reasoncodes import ReasonCode

from edge.mqtt import MqttSettings, Refusals, make_client

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
        self._topics = topics
        self._buffer = buffer
        self._client = make_client(s, persistent=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._s = s
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.broker_dropped: int | None = None
        self.refusals = Refusals("ingest", s)
        self._stopping = False

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself."""
        self._client.connect_async(self._s.host, self._s.port, keepalive=self._s.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._stopping = True
        self._buffer.close()
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    reason: ReasonCode, props: object) -> None:
        if reason.is_failure:
            self.refusals.refused(reason)
            return
        self.refusals.accepted()
        client.subscribe([(t, 1) for t in self._topics] + [(BROKER_DROPPED_TOPIC, 0)])
        log.info("ingest: connected, subscribing to %s", ", ".join(self._topics))
        self.connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reasons: list[ReasonCode], props: object) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("ingest: subscription refused: %s", failed)
            return
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason: ReasonCode, props: object) -> None:
        if self.connected.is_set() and not self._stopping:
            log.warning("ingest: disconnected (%s); paho reconnects", reason)
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        if msg.topic == BROKER_DROPPED_TOPIC:
            try:
                self.broker_dropped = int(msg.payload)
            except ValueError:
                log.warning("ingest: unreadable %s: %r", msg.topic, msg.payload[:40])
            return
        self._buffer.push((msg.topic, bytes(msg.payload)))
