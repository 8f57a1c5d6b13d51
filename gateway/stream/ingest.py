"""MQTT ingest: paho's network thread fills a bounded buffer that the asyncio core drains.

Acknowledged only when durable: the subscription uses manual acknowledgement, and a
message's PUBACK is sent once the readings and alarm events of the step that processed it
are written to InfluxDB or spooled to disk (``BatchingWriter.mark``), in the order the
messages came. A crash before that leaves them unacknowledged in our persistent session,
and the broker delivers them again to the next process. The PUBACKs due are sent from
paho's own thread as the next message comes in (or from the loop 50 ms later when none
comes): sending each from the loop woke paho's thread once per message, which cost ~15 %
of the maximum ingest.

The buffer bounds messages, not bytes. When it is full the paho thread blocks inside
``on_message``; the broker stops at its in-flight limit (unacknowledged messages) and keeps
the rest queued in our persistent session: backpressure instead of loss.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.mqtt import MqttConnection, MqttSettings, Refusals

log = logging.getLogger(__name__)

Message = tuple[str, bytes]

# Mosquitto's count of QoS 1/2 messages it dropped because a client's queue was full: the
# loss that the gateway's persistent session and the shipped queue limits exist to prevent.
BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


class MessageBuffer:
    """A bounded hand-over from one producer thread (or task) to one asyncio consumer; it
    remembers each message's acknowledgement token (0: none to send), in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_messages: int = 20_000,
                 acker: Callable[[list[int]], None] | None = None) -> None:
        self._loop = loop
        self._items: deque[Message] = deque()
        self._tokens: deque[int] = deque()
        self.acker = acker
        self._slots = threading.Semaphore(max_messages)
        self._ready = asyncio.Event()
        self._waiting = False
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The consumer's event loop."""
        return self._loop

    def push(self, item: Message, token: int = 0) -> None:
        """Add a message from another thread; blocks while the buffer is full. ``token``
        acknowledges it (its MQTT message id) once it is durable."""
        if self._closed:
            return              # never acknowledged: the broker delivers it again
        while not self._slots.acquire(timeout=0.5):
            if self._closed:
                return          # never acknowledged: the broker delivers it again
        # token first: the consumer takes items, and their tokens after them
        self._tokens.append(token)
        self._items.append(item)
        # The consumer raises _waiting before its last look at the deque, so either it sees
        # this item or we see the flag and wake it.
        if self._waiting:
            self._waiting = False
            self._loop.call_soon_threadsafe(self._ready.set)

    async def put(self, item: Message, token: int = 0) -> None:
        """Add a message from the event loop itself (in-process uplink, JetStream ingest);
        waits when full."""
        while not self._slots.acquire(blocking=False):
            await asyncio.sleep(0.005)
        self._tokens.append(token)
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

    def release(self, n: int) -> list[int]:
        """Free the slots of the ``n`` messages processed (the oldest taken); returns the
        acknowledgement tokens among them, to ``ack`` once they are durable."""
        if not n:
            return []
        tokens = [t for t in (self._tokens.popleft() for _ in range(n)) if t]
        self._slots.release(n)
        return tokens

    def ack(self, tokens: list[int]) -> None:
        """Acknowledge messages (their tokens from ``release``), oldest first."""
        if self.acker is not None and tokens:
            self.acker(tokens)

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
                                   on_message=self._on_message, manual_ack=True)
        buffer.acker = self._ack
        self.acknowledged = 0
        # acknowledgements due, sent from paho's own thread when the next message comes in
        # (no wake-up of its thread per acknowledgement), else from the loop soon after
        self._due: deque[int] = deque()
        self._due_lock = threading.Lock()
        self._loop = buffer.loop

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

    def pause(self) -> None:
        """Take no more messages (those that arrive stay unacknowledged: redelivered)."""
        self._buffer.close()

    def stop(self) -> None:
        """Send the acknowledgements due, disconnect and stop the network thread."""
        self._buffer.close()
        self._send_due()
        self.conn.stop()

    def _send_due(self) -> None:
        with self._due_lock:
            while self._due:
                self.conn.ack(self._due.popleft(), 1)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        if self._due:
            self._send_due()
        if msg.topic == BROKER_DROPPED_TOPIC:
            try:
                self.broker_dropped = int(msg.payload)
            except ValueError:
                log.warning("ingest: unreadable %s: %r", msg.topic, msg.payload[:40])
            return
        self._buffer.push((msg.topic, bytes(msg.payload)), msg.mid if msg.qos else 0)

    def _ack(self, mids: list[int]) -> None:
        with self._due_lock:
            self._due.extend(mids)
        self.acknowledged += len(mids)
        # an idle broker sends no message to carry them: the loop sends what is left
        self._loop.call_later(0.05, self._send_due)
