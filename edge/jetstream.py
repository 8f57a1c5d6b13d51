"""The NATS JetStream transport: subjects, partitions, dedup ids and the edge's uplink.

Beside MQTT (the single-box default), a deployment of many enterprises runs a NATS cluster
with JetStream. An edge publishes each wire message with the JetStream API, which answers
only once the stream (replicated R3) has stored it, with the dedup header
``Nats-Msg-Id: <enterprise>:<edge>:<boot>:<seq>``: a publish retried after a lost answer or a leader
election is stored once (within the stream's duplicate window; the gateway's sequence
tracker drops any later copy). Publishing over MQTT into nats-server is not offered: the
server acknowledges an MQTT publish before the user stream has it, and such messages were
lost when a stream leader died (the MQTT relay, ``edge.mqttrelay``, acknowledges what
MQTT-only edges leave on a broker only after JetStream has it).

Subjects: an MQTT topic ``mhs/v1/<enterprise>/<edge>/<kind>`` is published as
``hazgw.in.<enterprise>.<edge>.<kind>``; the cluster's subject mapping (``mapping()``, in the
shipped server config) moves it to ``hazgw.p.<partition>.<enterprise>.<edge>.<kind>``, the
partition a hash of the enterprise token, so an enterprise is in one partition whichever
node the edge reaches. Identifiers may hold a dot, which separates NATS tokens: it travels
as ``~`` (never in an identifier).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from edge.wire import ID_PATTERN, TOPIC_ROOT

log = logging.getLogger(__name__)

IN_PREFIX = "hazgw.in"
PARTITION_PREFIX = "hazgw.p"
_HEAD = re.compile(rb'^\{"v":1,"edge":"([^"\\]{1,64})","boot":(\d{1,19}),"seq":(\d{1,19})[,}]')


class NatsSettings(BaseModel):
    """Where the NATS cluster is and how the wire stream is laid out."""

    servers: list[str] = Field(default=["nats://127.0.0.1:4222"], min_length=1,
                               description="every node's client URL (the client fails over)")
    user: str | None = None
    password: SecretStr | None = None
    stream: str = Field(default="HAZGW_WIRE", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                        description="the JetStream stream of wire messages")
    partitions: int = Field(default=8, ge=1, le=1024,
                            description="fixed number of partitions (the subject mapping's)")
    replicas: int = Field(default=3, ge=1, le=5, description="stream replicas")
    retention_h: float = Field(default=168, gt=0,
                               description="how long the stream keeps a message (replay "
                                           "after an outage, failover): storage per node "
                                           "is this times the ingest rate")
    publish_timeout_s: float = Field(default=2.0, gt=0,
                                     description="one JetStream publish's wait for its ack")
    max_pending: int = Field(default=256, ge=1,
                             description="publishes awaiting their ack at once (edge)")

    def where(self) -> str:
        """The servers, for log lines (no credentials)."""
        return ",".join(s.split("@")[-1] for s in self.servers)

    def connect_options(self, name: str) -> dict[str, Any]:
        """Keyword arguments of ``nats.connect`` for a long-lived client."""
        opts: dict[str, Any] = {"servers": self.servers, "name": name,
                                "allow_reconnect": True, "max_reconnect_attempts": -1,
                                "reconnect_time_wait": 0.5, "connect_timeout": 2}
        if self.user is not None:
            opts["user"] = self.user
            opts["password"] = self.password.get_secret_value() if self.password else ""
        return opts


def _token(identifier: str) -> str:
    return identifier.replace(".", "~")


def _untoken(token: str) -> str:
    return token.replace("~", ".")


_WIRE_TOPIC = re.compile(f"^{re.escape(TOPIC_ROOT)}/({ID_PATTERN})/({ID_PATTERN})/"
                         "(readings|stats|dead-letters)$")


def subject_of(topic: str) -> str:
    """The ingest subject of an MQTT wire topic (``mhs/v1/<ent>/<edge>/<kind>``); only
    identifiers in the levels (an MQTT level may hold ``*``, ``>`` or a space, which in a
    subject would be a wildcard or two tokens): ValueError otherwise."""
    m = _WIRE_TOPIC.match(topic)
    if m is None:
        raise ValueError(f"not a wire topic: {topic!r}")
    parts = m.groups()
    return ".".join([IN_PREFIX, *map(_token, parts)])


def topic_of(subject: str) -> str:
    """The MQTT wire topic of a partitioned (or ingest) subject: what the core checks."""
    tokens = subject.split(".")
    if subject.startswith(PARTITION_PREFIX + ".") and len(tokens) == 6:
        ent, edge, kind = tokens[3:]
    elif subject.startswith(IN_PREFIX + ".") and len(tokens) == 5:
        ent, edge, kind = tokens[2:]
    else:
        raise ValueError(f"not a wire subject: {subject!r}")
    return "/".join([TOPIC_ROOT, _untoken(ent), _untoken(edge), kind])


def partition_of(enterprise: str, partitions: int) -> int:
    """The partition nats-server's ``{{partition(n, 1)}}`` gives an enterprise: FNV-1a (32
    bit) of its token, modulo n (a test checks this against the server)."""
    h = 0x811C9DC5
    for b in _token(enterprise).encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h % partitions


def mapping(partitions: int) -> tuple[str, str]:
    """The server config's subject mapping (source, destination) that partitions ingest."""
    return (f"{IN_PREFIX}.*.*.*",
            f"{PARTITION_PREFIX}.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}"
            ".{{wildcard(2)}}.{{wildcard(3)}}")


def msg_id(subject: str, payload: bytes) -> str:
    """The dedup id of a wire message on its ingest subject: ``<enterprise>:<edge>:<boot>:
    <seq>`` (an edge id is unique only within its enterprise, and the stream holds many),
    the header read from the message's head (orjson keeps the encoder's key order); for
    anything else (stats) a digest of subject and bytes, so a retried copy has the same id
    either way."""
    enterprise = subject.split(".")[2] if subject.count(".") >= 2 else ""
    m = _HEAD.match(payload[:160])
    if m is not None:
        return enterprise + ":" + b":".join(m.groups()).decode()
    return "sha256:" + hashlib.sha256(subject.encode() + b"\n" + payload).hexdigest()[:32]


class Pending:
    """One message on its way: published in order, retried with the same dedup id until
    JetStream acks it."""

    __slots__ = ("done", "mid", "payload", "subject")

    def __init__(self, subject: str, payload: bytes, mid: str) -> None:
        self.subject = subject
        self.payload = payload
        self.mid = mid
        self.done = False

    def is_published(self) -> bool:
        """Whether the stream stored it (the publish's ack came)."""
        return self.done


class JetStreamUplink:
    """An edge's uplink to JetStream, the same shape as ``MqttUplink`` for store and
    forward: ``send`` queues a message and returns a handle that says when the stream has
    it. One publish at a time, in order: a publish that failed (timeout, no leader during
    an election, a lost connection) is retried with the same dedup id before the next one
    goes, so the stream holds each edge's messages in the order they were made (the
    engine's timeline depends on it; concurrent publishes reordered around a leader's
    death). A connection lost for less than ``GRACE_S`` still counts as connected (the
    client fails over to another node meanwhile): messages wait in memory, not in the
    spool, whose replay would come after newer ones."""

    GRACE_S = 5.0

    def __init__(self, s: NatsSettings, who: str = "uplink") -> None:
        self.who = who
        self.settings = s
        self.published = 0
        self.acknowledged = 0
        self.publish_waits = 0
        self.retries = 0
        self._nc: Any = None
        self._js: Any = None
        self._lost_at: float | None = None
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(s.max_pending)
        self._head: Pending | None = None
        self._failing = False
        self._marks: deque[tuple[int, Callable[[], None]]] = deque()
        self._connector = asyncio.create_task(self._connect(), name=f"{who}-nats-connect")
        self._pump = asyncio.create_task(self._run(), name=f"{who}-nats-publish")

    @property
    def is_connected(self) -> bool:
        if self._nc is None:
            return False
        if self._nc.is_connected:
            self._lost_at = None
            return True
        loop = asyncio.get_running_loop()
        if self._lost_at is None:
            self._lost_at = loop.time()
        return loop.time() - self._lost_at < self.GRACE_S

    async def _connect(self) -> None:
        import nats
        delay, said = 0.5, False
        while True:
            try:
                self._nc = await nats.connect(**self.settings.connect_options(
                    f"hazgw-{self.who}"), error_cb=self._on_error)
                break
            except Exception as exc:    # every connect failure is retried, said once
                if not said:
                    log.error("%s: NATS %s does not answer (%s); retrying every 0.5–10 s",
                              self.who, self.settings.where(), exc or type(exc).__name__)
                    said = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        if said:
            log.warning("%s: NATS %s answers again", self.who, self.settings.where())
        self._js = self._nc.jetstream(timeout=self.settings.publish_timeout_s)

    async def _on_error(self, exc: Exception) -> None:
        log.debug("%s: NATS: %s", self.who, exc)

    async def send(self, topic: str, payload: bytes) -> Pending:
        """Queue a wire message (waits while ``max_pending`` are queued)."""
        return await self.send_to(subject_of(topic), payload)

    async def send_to(self, subject: str, payload: bytes) -> Pending:
        """Queue a message for a subject of its own (alarm events)."""
        p = Pending(subject, payload, msg_id(subject, payload))
        if self._queue.full():
            self.publish_waits += 1
        await self._queue.put(p)
        self.published += 1
        return p

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        """Queue a message (``Uplink``)."""
        await self.send(topic, payload)

    async def _run(self) -> None:
        while True:
            p = self._head = await self._queue.get()
            delay = 0.05
            while not await self._publish_one(p):
                self.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            p.done = True
            self._head = None
            self.acknowledged += 1
            while self._marks and self._marks[0][0] <= self.acknowledged:
                self._marks.popleft()[1]()

    async def _publish_one(self, p: Pending) -> bool:
        js = self._js
        if js is None or self._nc is None or not self._nc.is_connected:
            return False
        try:
            await js.publish(p.subject, p.payload, headers={"Nats-Msg-Id": p.mid})
        except Exception as exc:        # timeout, no responders, lost connection: retried
            if not self._failing:
                log.warning("%s: JetStream publish failing (%s); retrying in order, said "
                            "again when it works", self.who, exc or type(exc).__name__)
                self._failing = True
            return False
        if self._failing:
            log.warning("%s: JetStream publishes acknowledged again", self.who)
            self._failing = False
        return True

    def mark(self, done: Callable[[], None]) -> None:
        """Call ``done`` once everything queued so far is acknowledged (in order)."""
        if self.acknowledged >= self.published:
            done()
        else:
            self._marks.append((self.published, done))

    def all_acknowledged(self) -> bool:
        """Whether JetStream acked every message sent so far."""
        return self.acknowledged >= self.published

    async def close(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for the acks of what was queued, then stop and close; what is
        not acknowledged stays with the caller (store and forward spools it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.all_acknowledged() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if not self.all_acknowledged():
            log.warning("%s: closing with %d messages JetStream has not acknowledged",
                        self.who, self.published - self.acknowledged)
        for t in (self._connector, self._pump):
            t.cancel()
        await asyncio.gather(self._connector, self._pump, return_exceptions=True)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
