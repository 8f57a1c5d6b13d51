"""The MQTT relay: wire messages of MQTT-only edges from a broker into JetStream.

Edges (or third-party devices speaking the wire format) that can only publish over MQTT
publish to a Mosquitto near them, as in the single-box set-up; the relay takes their
messages from it on a persistent session with manual acknowledgement and acknowledges
each to the broker only once JetStream has stored it (``JetStreamUplink``: in order, with
the dedup id). A relay that dies leaves the unacknowledged ones with the broker, which
delivers them again to the next; the dedup id and the gateway's sequence tracker drop a
second copy. Not nats-server's own MQTT listener: it acknowledges a publish before the
user stream has it, and such messages were lost when a stream leader died.

A message on a topic that cannot be a subject (a level that is not an identifier) is
acknowledged and counted, never relayed: the gateway would refuse it anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import paho.mqtt.client as mqtt

from edge.jetstream import JetStreamUplink, NatsSettings, Pending, subject_of
from edge.mqtt import MqttConnection, MqttSettings
from edge.stats import stats_topic
from edge.supervise import Loops, supervised
from edge.wire import readings_topic

log = logging.getLogger(__name__)


class MqttRelay:
    """Broker → JetStream for the enterprises given (``+``: every one)."""

    def __init__(self, mqtt_settings: MqttSettings, nats: NatsSettings,
                 enterprises: list[str] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, bytes, int]] = asyncio.Queue()
        self._sent: deque[tuple[Pending, int]] = deque()
        self.relayed = 0
        self.refused = 0
        codes = enterprises or ["+"]
        topics = [t for c in codes for t in (readings_topic(c, "+"), stats_topic(c, "+"))]
        self.uplink = JetStreamUplink(nats, "relay")
        self.conn = MqttConnection("relay", mqtt_settings, persistent=True,
                                   subscriptions=[(t, 1) for t in topics],
                                   on_message=self._on_message, manual_ack=True)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        # paho's thread: hand over to the loop; the broker's in-flight limit bounds how many
        # wait unacknowledged here
        self._loop.call_soon_threadsafe(self._queue.put_nowait,
                                        (msg.topic, bytes(msg.payload), msg.mid))

    async def _forward_step(self) -> None:
        try:
            async with asyncio.timeout(0.5):      # so that a stop is seen
                topic, payload, mid = await self._queue.get()
        except TimeoutError:
            return
        try:
            subject_of(topic)
        except ValueError:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning("relay: %d message(s) on topics that are not wire topics, "
                            "dropped (the last: %r)", self.refused, topic[:120])
            self.conn.ack(mid, 1)
            return
        self._sent.append((await self.uplink.send(topic, payload), mid))

    async def _ack_step(self) -> None:
        while self._sent and self._sent[0][0].is_published():
            _, mid = self._sent.popleft()
            self.conn.ack(mid, 1)
            self.relayed += 1

    async def run(self, stop: asyncio.Event, loops: Loops | None = None) -> None:
        """Relay until ``stop``; then acknowledge what JetStream has and close."""
        loops = loops or Loops()
        self.conn.start()
        log.info("relay: %s -> JetStream %s (stream %s)", self.conn.settings.where(),
                 self.uplink.settings.where(), self.uplink.settings.stream)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(supervised(loops, "relay-forward", self._forward_step, stop,
                                          0.0), name="relay-forward")
                tg.create_task(supervised(loops, "relay-acks", self._ack_step, stop, 0.01,
                                          final_step=True), name="relay-acks")
        finally:
            await self.uplink.close(timeout_s=5.0)
            await self._ack_step()      # what was stored meanwhile; the rest comes again
            self.conn.stop()
