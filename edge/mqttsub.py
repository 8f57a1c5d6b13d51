"""An asyncio-native MQTT 3.1.1 subscriber: the edge's connection to its MQTT sensors.

Why not paho here: a plant's detectors publish one reading per message, and paho spends its
Python per message — its network thread, one callback and one PUBACK write each, and one hop
to the event loop each (~85–250 µs of CPU a message in ``make bench``). This client runs on
the event loop, parses every complete PUBLISH that one read returned, hands them to the
handler as one batch and acknowledges them with one write, after the handler took them (the
point at which paho acknowledged too).

It does only what a subscriber needs: CONNECT (persistent session, credentials, TLS),
SUBSCRIBE at QoS ≤ 1, PUBLISH in at QoS 0 or 1, PUBACK, PINGREQ; anything else the broker
sends is a protocol error that drops the connection (said once) and reconnects with backoff.
A PUBLISH larger than ``max_payload_bytes`` is skipped as it streams by (acknowledged,
counted, reported to ``on_oversize``), never held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from edge.mqtt import MqttSettings, Refusals

log = logging.getLogger(__name__)
T = TypeVar("T")

Batch = list[tuple[str, bytes]]
BatchHandler = Callable[[Batch], None]
OversizeHandler = Callable[[str, int], None]

_CONNACK_REFUSALS = {1: "unacceptable protocol version", 2: "identifier rejected",
                     3: "server unavailable", 4: "bad user name or password",
                     5: "not authorised"}
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"
_PUBACK = struct.Struct(">BBH")


class ProtocolError(ConnectionError):
    """The broker sent what a subscriber cannot take (the text says what)."""


class RefusedError(ConnectionError):
    """The broker answered CONNECT with a refusal."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (128 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return len(b).to_bytes(2, "big") + b


def connect_packet(s: MqttSettings, persistent: bool) -> bytes:
    """CONNECT (MQTT 3.1.1) with the settings' client id, credentials and keepalive."""
    flags = 0 if persistent else 0x02
    payload = _string(s.client_id)
    if s.username:
        flags |= 0x80
        payload += _string(s.username)
        if s.password is not None:
            flags |= 0x40
            payload += _string(s.password.get_secret_value())
    body = _string("MQTT") + bytes([4, flags]) + s.keepalive_s.to_bytes(2, "big") + payload
    return b"\x10" + _varint(len(body)) + body


def subscribe_packet(pid: int, topics: list[str]) -> bytes:
    """SUBSCRIBE of ``topics`` at QoS 1."""
    body = pid.to_bytes(2, "big") + b"".join(_string(t) + b"\x01" for t in topics)
    return b"\x82" + _varint(len(body)) + body


class _Wire(asyncio.Protocol):
    """One connection's bytes: packets parsed per read, PUBLISHes handed over per read."""

    def __init__(self, sub: MqttSubscriber) -> None:
        self.sub = sub
        self.buf = bytearray()
        self.skip = 0                       # bytes of an oversize PUBLISH still to discard
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.suback: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[BaseException | None] = loop.create_future()
        self.pong = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)

    def fail(self, why: str) -> None:
        if not self.closed.done():
            self.closed.set_result(ProtocolError(why))
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.skip:
            dropped = min(self.skip, len(data))
            self.skip -= dropped
            data = data[dropped:]
        buf = self.buf
        buf += data
        batch: Batch = []
        acks: list[bytes] = []
        pos, n = 0, len(buf)
        limit = self.sub.max_payload_bytes
        try:
            while n - pos >= 2:
                b0 = buf[pos]
                i, length, shift, whole = pos + 1, 0, 0, False
                while i < n:                # the remaining length: 1–4 bytes of 7 bits
                    byte = buf[i]
                    i += 1
                    length |= (byte & 127) << shift
                    if byte < 128:
                        whole = True
                        break
                    shift += 7
                    if shift > 21:
                        raise ProtocolError("remaining length longer than 4 bytes")
                if not whole:
                    break                   # the length itself is not complete yet
                end = i + length
                kind = b0 >> 4
                if kind == 3 and length > limit + 65_540:
                    # too large to hold: take its header, acknowledge it, discard the rest
                    if n < i + 4 or n < i + 2 + (buf[i] << 8 | buf[i + 1]) + 2:
                        break
                    topic, pid = self._header(b0, buf, i)
                    if pid is not None:
                        acks.append(_PUBACK.pack(0x40, 2, pid))
                    self.sub.oversize(topic, length)
                    self.skip = max(0, end - n)
                    pos = min(end, n)
                    continue
                if end > n:
                    break
                if kind == 3:
                    topic, pid = self._header(b0, buf, i)
                    j = i + 2 + (buf[i] << 8 | buf[i + 1]) + (2 if pid is not None else 0)
                    batch.append((topic, bytes(buf[j:end])))
                    if pid is not None:
                        acks.append(_PUBACK.pack(0x40, 2, pid))
                elif kind == 13:
                    self.pong = True
                elif kind == 2 and length == 2 and not self.connack.done():
                    self.connack.set_result(buf[i + 1])
                elif kind == 9 and length >= 3 and not self.suback.done():
                    self.suback.set_result(bytes(buf[i + 2:end]))
                else:
                    raise ProtocolError(f"unexpected packet type {kind} (length {length})")
                pos = end
        except ProtocolError as exc:
            self.fail(str(exc))
            return
        finally:
            del buf[:pos]
            if batch:
                self.sub.deliver(batch)
            if acks and self.transport is not None and not self.transport.is_closing():
                self.transport.write(b"".join(acks))

    @staticmethod
    def _header(b0: int, buf: bytearray, i: int) -> tuple[str, int | None]:
        tl = buf[i] << 8 | buf[i + 1]
        try:
            topic = buf[i + 2:i + 2 + tl].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("a topic that is not UTF-8") from None
        qos = (b0 >> 1) & 3
        if qos == 2 or qos == 3:
            raise ProtocolError(f"PUBLISH at QoS {qos} on a QoS 1 subscription")
        j = i + 2 + tl
        return topic, (buf[j] << 8 | buf[j + 1]) if qos else None


class MqttSubscriber:
    """Subscribes ``topics`` at QoS 1 on a persistent session and hands every read's
    messages to ``on_batch`` on the event loop; ``run`` connects, reads and reconnects with
    backoff until cancelled. Refusals and lost connections are said once (``Refusals``)."""

    def __init__(self, who: str, s: MqttSettings, topics: list[str], on_batch: BatchHandler,
                 *, persistent: bool = True, on_oversize: OversizeHandler | None = None,
                 max_payload_bytes: int = 1024 * 1024) -> None:
        self.who = who
        self.settings = s
        self.topics = topics
        self.persistent = persistent
        self.max_payload_bytes = max_payload_bytes
        self._on_batch = on_batch
        self._on_oversize = on_oversize
        self.refusals = Refusals(who, s)
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.unreachable = 0
        self.messages = 0
        self.oversize_messages = 0
        self.handler_errors = 0

    def deliver(self, batch: Batch) -> None:
        """One read's messages to the handler; an error of the handler is counted and said
        once per streak (the messages are acknowledged all the same: they would come again
        and fail again)."""
        self.messages += len(batch)
        try:
            self._on_batch(batch)
        except Exception:
            self.handler_errors += 1
            if self.handler_errors in (1, 10, 100, 1000):
                log.exception("%s: the message handler failed (%d times so far)", self.who,
                              self.handler_errors)

    def oversize(self, topic: str, size: int) -> None:
        """A PUBLISH too large to take: counted and reported."""
        self.oversize_messages += 1
        if self._on_oversize is not None:
            self._on_oversize(topic, size)

    def _tls(self) -> ssl.SSLContext | None:
        s = self.settings
        if s.tls_ca is None:
            return None
        ctx = ssl.create_default_context(cafile=str(s.tls_ca))
        if s.tls_cert is not None:
            ctx.load_cert_chain(str(s.tls_cert), str(s.tls_key) if s.tls_key else None)
        return ctx

    async def run(self) -> None:
        """Connect, subscribe and read until cancelled; every failure is said once per
        streak and retried after 1 s, doubling up to ``reconnect_max_s``."""
        delay = 1.0
        while True:
            try:
                await self._session()
            except RefusedError as exc:
                self.refusals.refused(str(exc))
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                if self.connected.is_set():
                    log.warning("%s: disconnected from %s (%s); reconnecting every 1–%d s",
                                self.who, self.settings.where(), exc or type(exc).__name__,
                                self.settings.reconnect_max_s)
                    self.refusals.last = "unreachable"
                    delay = 1.0
                else:
                    self.unreachable += 1
                    if self.refusals.last != "unreachable":
                        self.refusals.last = "unreachable"
                        log.error("%s: cannot reach the broker at %s (%s); retrying every "
                                  "1–%d s with backoff (said again when connected)",
                                  self.who, self.settings.where(),
                                  exc or type(exc).__name__, self.settings.reconnect_max_s)
            finally:
                self.connected.clear()
                self.subscribed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, float(self.settings.reconnect_max_s))

    async def _session(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        ctx = self._tls()
        async with asyncio.timeout(10):
            transport, wire = await loop.create_connection(
                lambda: _Wire(self), s.host, s.port, ssl=ctx,
                server_hostname=s.host if ctx is not None else None)
        try:
            transport.write(connect_packet(s, self.persistent))
            async with asyncio.timeout(10):
                code = await _first(wire.connack, wire.closed, "CONNACK")
            if code:
                raise RefusedError(_CONNACK_REFUSALS.get(code, f"return code {code}"))
            self.refusals.accepted()
            self.connected.set()
            transport.write(subscribe_packet(1, self.topics))
            async with asyncio.timeout(10):
                codes = await _first(wire.suback, wire.closed, "SUBACK")
            if any(c & 0x80 for c in codes):
                refused = [t for t, c in zip(self.topics, codes, strict=False) if c & 0x80]
                log.error("%s: subscription refused: %s", self.who, ", ".join(refused))
            self.subscribed.set()
            log.info("%s: connected to %s, subscribing to %s", self.who, s.where(),
                     ", ".join(self.topics))
            every = max(1.0, s.keepalive_s / 2)
            while True:                     # ping at half the keepalive; no answer: gone
                try:
                    async with asyncio.timeout(every):
                        exc = await asyncio.shield(wire.closed)
                except TimeoutError:
                    if not wire.pong:
                        raise TimeoutError(f"no PINGRESP within {every:.0f} s") from None
                    wire.pong = False
                    transport.write(_PINGREQ)
                    continue
                raise exc or ConnectionResetError("connection closed by the broker")
        finally:
            try:
                if not transport.is_closing():
                    # the broker closes on DISCONNECT after taking the PUBACKs sent before
                    # it: waiting for that (bounded) keeps a quick return of the same session
                    # from being sent again what was acknowledged
                    with contextlib.suppress(Exception):
                        transport.write(_DISCONNECT)
                        async with asyncio.timeout(1.0):
                            await asyncio.shield(wire.closed)
            finally:
                transport.close()


async def _first(answer: asyncio.Future[T], closed: asyncio.Future[BaseException | None],
                 what: str) -> T:
    """The broker's answer, or the reason the connection closed before it came."""
    pending: list[asyncio.Future[Any]] = [answer, closed]
    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    if answer.done():
        return answer.result()
    exc = closed.result()
    raise exc or ConnectionResetError(f"connection closed before {what}")
