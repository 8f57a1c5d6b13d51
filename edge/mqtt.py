"""MQTT connections of ours (paho-mqtt 2): settings, the one connection type that every
client of the project uses (ingest, edge uplink, alarm publisher, notifier, simulator), and
the edge uplink. The edge's sensor subscriber has its own asyncio client (edge.mqttsub):
one reading per message made paho's per-message cost the whole cost there.

paho's own network thread is used rather than aiomqtt: DESIGN.md measured 50–85 µs per message
for paho against 120–180 µs for aiomqtt, and the core's ingest is bound by per-message cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, Field, SecretStr

log = logging.getLogger(__name__)


class MqttSettings(BaseModel):
    """Broker connection settings (secrets from the environment)."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = "hazgw-core"
    keepalive_s: int = Field(default=30, ge=5)
    reconnect_max_s: int = Field(
        default=10, ge=1, le=600,
        description="reconnects back off from 1 s to this; short, so that readings flow again "
                    "soon after a broker restart")
    max_queued_messages: int = Field(
        default=10_000, ge=10, description="outgoing messages paho holds before publish waits")
    tls_ca: Path | None = Field(default=None, description="CA file: connect with TLS")
    tls_cert: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    tls_key: Path | None = Field(default=None, description="client key (mutual TLS)")

    def where(self) -> str:
        """host:port, and whether over TLS (for log lines)."""
        return f"{self.host}:{self.port}{' (TLS)' if self.tls_ca else ''}"


def make_client(s: MqttSettings, persistent: bool) -> mqtt.Client:
    """A paho client; ``persistent`` keeps the broker-side session (and its queue) across
    disconnects, so QoS 1 messages sent while we are away are not lost."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                         clean_session=not persistent, protocol=mqtt.MQTTv311)
    if s.username:
        client.username_pw_set(s.username, s.password.get_secret_value() if s.password else None)
    if s.tls_ca is not None:
        client.tls_set(ca_certs=str(s.tls_ca),
                       certfile=str(s.tls_cert) if s.tls_cert else None,
                       keyfile=str(s.tls_key) if s.tls_key else None)
    client.max_queued_messages_set(s.max_queued_messages)
    client.max_inflight_messages_set(100)
    client.reconnect_delay_set(min_delay=1, max_delay=s.reconnect_max_s)
    return client


class Refusals:
    """Says a refused connection once per reason (state changes, not repetitions) with what
    to check and when paho retries, and counts every refusal."""

    def __init__(self, who: str, s: MqttSettings) -> None:
        self.who = who
        self.settings = s
        self.count = 0
        self.last: str | None = None

    def refused(self, reason: ReasonCode | str) -> None:
        """Note one refusal (from paho's thread)."""
        self.count += 1
        if str(reason) != self.last:
            self.last = str(reason)
            log.error("%s: broker %s refused the connection: %s (check HAZGW_MQTT__USERNAME / "
                      "HAZGW_MQTT__PASSWORD and TLS settings); retrying every 1–%d s with "
                      "backoff", self.who, self.settings.where(), reason,
                      self.settings.reconnect_max_s)

    def accepted(self) -> None:
        """The broker accepted us: a later refusal is news again."""
        self.last = None


MessageHandler = Callable[[mqtt.MQTTMessage], None]


class MqttConnection:
    """One broker connection on paho's network thread.

    It connects in the background and lets paho reconnect with backoff; says a refusal once
    per reason and a lost connection once (``Refusals``); subscribes again on every
    connect (a persistent session keeps the subscriptions, a clean one does not, and a
    broker that lost its state keeps neither); waits rather than drop when paho's outgoing
    queue is full; and resolves an asyncio future per publish when the broker acknowledges
    it (``publish_acked``). ``manual_ack`` leaves incoming QoS 1 messages unacknowledged
    until ``ack`` (the ingest acknowledges only what is durable)."""

    def __init__(self, who: str, s: MqttSettings, *, persistent: bool,
                 subscriptions: list[tuple[str, int]] | None = None,
                 on_message: MessageHandler | None = None, manual_ack: bool = False) -> None:
        self.who = who
        self.settings = s
        self.subscriptions = list(subscriptions or [])
        self.client = make_client(s, persistent)
        self.client.manual_ack_set(manual_ack)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail
        self.unreachable = 0            # failed attempts to reach the broker at all
        if on_message is not None:
            handler = on_message
            self.client.on_message = lambda c, u, msg: handler(msg)
        self.refusals = Refusals(who, s)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.published = 0
        self.acknowledged = 0
        self.publish_waits = 0
        self._closing = False
        self._started = False
        # mid -> (loop, future) of publishes someone awaits. paho calls on_publish holding
        # its own mutex, which publish() takes too: never call paho while holding this lock.
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself."""
        if not self._started:
            self._started = True
            self.client.connect_async(self.settings.host, self.settings.port,
                                      keepalive=self.settings.keepalive_s)
            self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop paho's thread (what is unacknowledged stays unacknowledged)."""
        self._closing = True
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
        with self._lock:
            for loop, fut in self._waiting.values():
                loop.call_soon_threadsafe(_fail, fut, ConnectionError("connection closed"))
            self._waiting.clear()

    @property
    def is_connected(self) -> bool:
        """Whether the broker has accepted us (and not dropped us since)."""
        return self.connected.is_set()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    reason: ReasonCode, props: object) -> None:
        if reason.is_failure:
            self.refusals.refused(reason)
            return
        self.refusals.accepted()
        if self.subscriptions:
            client.subscribe(self.subscriptions)
            log.info("%s: connected to %s, subscribing to %s", self.who, self.settings.where(),
                     ", ".join(t for t, _ in self.subscriptions))
        else:
            log.info("%s: connected to %s", self.who, self.settings.where())
        self.connected.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        # paho's thread: the TCP (or TLS) connection could not be made. Said at the first
        # failure of a streak, counted after; a connection that works again is said by
        # _on_connect.
        self.unreachable += 1
        if self.refusals.last != "unreachable":
            self.refusals.last = "unreachable"
            log.error("%s: cannot reach the broker at %s; retrying every 1–%d s with backoff "
                      "(said again when connected)", self.who, self.settings.where(),
                      self.settings.reconnect_max_s)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reasons: list[ReasonCode], props: object) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("%s: subscription refused: %s", self.who, failed)
            return
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason: ReasonCode, props: object) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("%s: disconnected from %s (%s); reconnecting every 1–%d s",
                        self.who, self.settings.where(), reason, self.settings.reconnect_max_s)
            self.refusals.last = "unreachable"      # that line said it: the retries are quiet
        self.connected.clear()
        self.subscribed.clear()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason: ReasonCode, props: object) -> None:
        # paho's thread, on PUBACK; a plain int increment is atomic under the GIL
        self.acknowledged += 1
        with self._lock:
            waiter = self._waiting.pop(mid, None)
        if waiter is not None:
            waiter[0].call_soon_threadsafe(_done, waiter[1])

    async def send(self, topic: str, payload: bytes, qos: int = 1) -> mqtt.MQTTMessageInfo:
        """Queue a publish (sent on reconnect if we are away); waits while paho's queue is
        full. Returns paho's handle to follow the acknowledgement."""
        while True:
            info = self.client.publish(topic, payload, qos=qos)
            if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
                self.published += 1
                return info
            self.publish_waits += 1
            await asyncio.sleep(0.05)

    async def publish_acked(self, topic: str, payload: bytes, timeout_s: float) -> None:
        """Publish at QoS 1 and return when the broker acknowledged it; raises
        ConnectionError when not connected, TimeoutError when no PUBACK came in time."""
        if not self.is_connected:
            raise ConnectionError(f"not connected to the broker {self.settings.where()}")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        info = self.client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"publish refused: {mqtt.error_string(info.rc)}")
        self.published += 1
        with self._lock:
            self._waiting[info.mid] = (loop, fut)
        deadline = loop.time() + timeout_s
        try:
            # The PUBACK may have come before the future was registered: look at paho's own
            # flag too, at short intervals.
            while not (fut.done() or info.is_published()):
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"no PUBACK within {timeout_s} s")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, 0.2)):
                        await asyncio.shield(fut)
        finally:
            with self._lock:
                self._waiting.pop(info.mid, None)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge one incoming message (with ``manual_ack``); any thread."""
        self.client.ack(mid, qos)

    def all_acknowledged(self) -> bool:
        """Whether the broker acknowledged every message published so far."""
        return self.acknowledged >= self.published


def _done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _fail(fut: asyncio.Future[None], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class Uplink(Protocol):
    """Where an edge agent sends its wire batches."""

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        """Hand over one message (holding ``readings`` readings, for the counts); waits
        rather than drop when the uplink is full."""

    async def close(self) -> None:
        """Deliver what is queued (within reason) and disconnect."""


class MqttUplink(MqttConnection):
    """Publishes at QoS 1 on a persistent session (the edge uplink, the alarm publisher)."""

    def __init__(self, s: MqttSettings, who: str = "uplink") -> None:
        super().__init__(who, s, persistent=True)
        self.start()

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        """Queue a QoS 1 publish; waits while paho's outgoing queue is full."""
        await self.send(topic, payload)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for the broker to acknowledge what we sent, then disconnect."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.all_acknowledged() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if not self.all_acknowledged():
            log.warning("%s: closing with %d messages the broker has not acknowledged",
                        self.who, self.published - self.acknowledged)
        self.stop()
