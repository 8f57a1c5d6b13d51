"""JetStream ingest: one enterprise's wire messages from the partitioned stream into its core.

The stream (``ensure_stream``) holds every partition's subjects, replicated, and keeps them
by age, not by consumption. Where an enterprise's core has got to is not kept by the
server but in the core's own saved state: the stream sequence of the newest message a saved
state covers (``gateway.stream.state``; the tokens of this ingest are stream sequences).
The owner of the enterprise, and after a failover the next one, restores that state and
reads the stream from the message after it, in stream order, with a consumer of its own
(ephemeral, no acknowledgements: nothing else reads from it). A message processed but not
yet covered by a saved state comes again after a crash; the sequence tracker drops what the
state has seen, and the rest is evaluated from the state it found. So a message counts as
acknowledged once a saved state covers it, as on MQTT.

Durable consumers with acknowledgements were tried first: after a crash the server handed
out new messages before those the dead owner had left unacknowledged (those only after the
ack wait), so the engine saw an edge's readings out of order; making them afresh at the
ack floor while a node was down failed with 'consumer name already in use' and 'consumer
not found'. A consumer here is made afresh whenever one delivery was skipped (its
sequence jumped: a node died with it on the way), after a reconnect (nats.py's pull
subscriptions can stop delivering then, nats.py issue 504), and when fetches bring nothing
while the consumer holds messages.

Fetching is a supervised loop: a lost connection or a stream without a leader is one line,
a counter, a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from edge.jetstream import PARTITION_PREFIX, NatsSettings, mapping, topic_of
from edge.supervise import Loops, describe, supervised
from gateway.stream.ingest import MessageBuffer

log = logging.getLogger(__name__)

FETCH_BATCH = 256
DUPLICATE_WINDOW_S = 120.0
IDLE_CHECK = 5                  # empty fetches (of 1 s) before the consumer is asked
INACTIVE_S = 30.0               # a consumer nobody reads from is removed by the server
PARTITIONED = f"{PARTITION_PREFIX}.>"
ALARM_SUBJECTS = "hazgw.alarms.>"
STREAM_NAME_IN_USE = 10058      # JetStream's error code: another session made it first


def enterprise_filter(enterprise: str) -> str:
    """The subjects of one enterprise, in whichever partition."""
    return f"{PARTITION_PREFIX}.*.{enterprise.replace('.', '~')}.>"


async def ensure_stream(js: Any, s: NatsSettings) -> None:
    """The wire stream and the alarm stream beside it, created when missing (file storage,
    ``s.replicas``, a duplicate window for the dedup ids, kept ``s.retention_h``; when full,
    new messages are refused rather than old ones dropped: the edges then spool). An
    existing stream is used as it is, said when its replicas differ from the setting; one
    made meanwhile by another session is taken as found."""
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError
    try:
        info = await js.stream_info(s.stream)
    except NotFoundError:
        await _add(js, StreamConfig(
            name=s.stream, subjects=[PARTITIONED], num_replicas=s.replicas,
            storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S,
            max_age=s.retention_h * 3600, discard=DiscardPolicy.NEW))
        log.info("jetstream: stream %s created (R%d, subjects %s; the servers need the "
                 "mapping %s -> %s)", s.stream, s.replicas, PARTITIONED, *mapping(s.partitions))
    else:
        if info.config.num_replicas != s.replicas:
            log.warning("jetstream: stream %s has %d replicas, the setting says %d",
                        s.stream, info.config.num_replicas, s.replicas)
    alarms = alarm_stream(s)
    try:
        await js.stream_info(alarms)
    except NotFoundError:
        await _add(js, StreamConfig(
            name=alarms, subjects=[ALARM_SUBJECTS], num_replicas=s.replicas,
            storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S,
            max_age=s.retention_h * 3600, discard=DiscardPolicy.NEW))
        log.info("jetstream: stream %s created (R%d, alarm events on %s)", alarms,
                 s.replicas, ALARM_SUBJECTS)


async def _add(js: Any, config: Any) -> None:
    from nats.js.errors import BadRequestError
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise


def alarm_stream(s: NatsSettings) -> str:
    """The stream of alarm events beside the wire stream."""
    return f"{s.stream}_ALARMS"


class JetStreamIngest:
    """One enterprise's reader of the stream feeding a ``MessageBuffer`` (tokens: stream
    sequences); the same face as ``MqttIngest`` for the session and the stats."""

    def __init__(self, s: NatsSettings, enterprise: str, buffer: MessageBuffer,
                 loops: Loops, instance: str) -> None:
        self.settings = s
        self.enterprise = enterprise
        self._buffer = buffer
        self._loops = loops
        self._instance = instance
        self.connected = threading.Event()
        self.subscribed = self.connected        # consuming: what callers wait for
        self.broker_dropped: int | None = None
        self.acknowledged = 0           # messages a saved state covers
        self.delivered = 0
        self.consumers = 0              # consumers made (the first, and afresh)
        self.lost_deliveries = 0
        self.stalls = 0                 # fetches that brought nothing though messages wait
        self.position = 0               # stream sequence of the newest message buffered
        self._nc: Any = None
        self._sub: Any = None
        self._consumer_seq = 0
        self._stale = False
        self._idle = 0
        self._paused = False
        buffer.acker = self._ack

    def start(self) -> None:
        """Nothing to start here: ``run`` is the session's task."""

    def start_at(self, position: int | None) -> None:
        """Read from the message after ``position`` (what the restored state covers; None:
        from the stream's first)."""
        self.position = position or 0

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch until ``stop``; then close."""
        try:
            await supervised(self._loops, "jetstream-fetch", self._fetch_step, stop, 0.0)
        finally:
            if self._nc is not None:
                await self._nc.close()
            self.connected.clear()

    def pause(self) -> None:
        """Take no more messages (fetched ones not yet buffered are read again later)."""
        self._paused = True
        self._buffer.close()

    def stop(self) -> None:
        """The connection closes when ``run`` ends."""
        self._paused = True

    async def _open(self) -> None:
        import nats
        if self._nc is None:
            self._nc = await nats.connect(**self.settings.connect_options(
                f"hazgw-gateway-{self._instance}-{self.enterprise}"),
                disconnected_cb=self._disconnected, reconnected_cb=self._reconnected)
        js = self._nc.jetstream(timeout=5)
        await ensure_stream(js, self.settings)
        await self._consume_from(js, self.position + 1)
        self.connected.set()

    async def _consume_from(self, js: Any, start: int) -> None:
        """A consumer of the enterprise's subjects from stream sequence ``start``."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        if self._sub is not None:
            with contextlib.suppress(Exception):     # a subscription of a lost connection
                await self._sub.unsubscribe()
            self._sub = None
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start, filter_subject=enterprise_filter(self.enterprise),
            inactive_threshold=INACTIVE_S, num_replicas=1, mem_storage=True)
        self._sub = await js.pull_subscribe(enterprise_filter(self.enterprise),
                                            stream=self.settings.stream, config=config)
        self._consumer_seq = 0
        self._idle = 0
        self.consumers += 1
        log.info("jetstream: %s consuming %s on %s from stream sequence %d", self.enterprise,
                 enterprise_filter(self.enterprise), self.settings.where(), start)

    async def _disconnected(self) -> None:
        self.connected.clear()

    async def _reconnected(self) -> None:
        self._stale = True
        self.connected.set()

    async def _stalled(self) -> bool:
        """After ``IDLE_CHECK`` empty fetches in a row: whether the consumer holds messages
        that the fetches do not bring."""
        self._idle += 1
        if self._idle < IDLE_CHECK:
            return False
        self._idle = 0
        try:
            info = await self._sub.consumer_info()
        except Exception:       # gone with a node (or removed as inactive): make another
            return True
        return bool(info.num_pending)

    async def _fetch_step(self) -> None:
        import nats.errors
        if self._paused:
            await asyncio.sleep(0.05)
            return
        try:
            if self._sub is None:
                await self._open()
            js = self._nc.jetstream(timeout=5)
            if self._stale:
                self._stale = False
                await self._consume_from(js, self.position + 1)
        except Exception as exc:    # said by the supervisor, with the enterprise
            raise ConnectionError(f"{self.enterprise}: no consumer: {describe(exc)}") from exc
        try:
            msgs = await self._sub.fetch(FETCH_BATCH, timeout=1.0)
        except (nats.errors.TimeoutError, TimeoutError):
            # nothing new (either kind of timeout), or fetches that no longer bring
            # anything: a consumer afresh, counted
            if await self._stalled():
                self.stalls += 1
                log.warning("jetstream: %s: fetches bring nothing while the consumer holds "
                            "messages: consuming afresh", self.enterprise)
                await self._consume_from(js, self.position + 1)
            return
        self._idle = 0
        for m in msgs:
            if self._paused:
                return                          # not buffered: read again later
            meta = m.metadata.sequence
            if meta.consumer != self._consumer_seq + 1 or meta.stream <= self.position:
                # a delivery skipped (a node died with it on the way) or one from before:
                # what follows would overtake it; read again from where we are
                self.lost_deliveries += 1
                await self._consume_from(js, self.position + 1)
                return
            self._consumer_seq = meta.consumer
            self.position = meta.stream
            self.delivered += 1
            try:
                topic = topic_of(m.subject)
            except ValueError:
                topic = m.subject               # the boundary refuses it, and counts it
            await self._buffer.put((topic, m.data), meta.stream)

    def _ack(self, tokens: list[int]) -> None:
        # a saved state covers them (or, without one, they are written): nothing to tell
        # the server, which keeps messages by age
        self.acknowledged += len(tokens)
