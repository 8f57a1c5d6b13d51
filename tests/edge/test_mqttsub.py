"""The edge's own MQTT subscriber (edge.mqttsub) against real Mosquitto: every message once,
acknowledged (not sent again to the same session), kept for the session while the edge is
away, an oversize one skipped without holding it, TLS with credentials, a refusal said once;
and its packet parser, which must read the same packets however the bytes are split."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from edge.mqtt import MqttSettings
from edge.mqttsub import Batch, MqttSubscriber, _string, _varint, _Wire
from gateway.sim.ports import free_port
from tests.services import Server, mosquitto_tls
from tests.waiting import wait_until


def publish_all(port: int, messages: list[tuple[str, bytes]], **tls: object) -> None:
    """Publish at QoS 1 with paho (another client, as a sensor would) and wait for the
    broker's acknowledgement of each."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"device-{free_port()}")
    if tls:
        c.username_pw_set(str(tls["user"]), str(tls["password"]))
        c.tls_set(ca_certs=str(tls["ca"]))
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        infos = [c.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        c.disconnect()
        c.loop_stop()


@contextlib.asynccontextmanager
async def subscribed(sub: MqttSubscriber) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sub.run())
    try:
        await wait_until(sub.subscribed.is_set)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_every_message_arrives_once_and_is_not_sent_again(mosquitto_server: Server) -> None:
    got: list[tuple[str, bytes]] = []
    s = MqttSettings(port=mosquitto_server.port, client_id="sub-once")
    sent = [(f"subonce/s{i % 7}", f"{i}".encode()) for i in range(3000)]
    async with subscribed(MqttSubscriber("t", s, ["subonce/#"], got.extend)) as _:
        await asyncio.to_thread(publish_all, mosquitto_server.port, sent)
        await wait_until(lambda: len(got) >= len(sent))
    assert got == sent                              # once each, in order
    # the same session again: what was acknowledged is not delivered again; a marker sent
    # now is the next thing to arrive (a session delivers in order)
    again: list[tuple[str, bytes]] = []
    async with subscribed(MqttSubscriber("t", s, ["subonce/#"], again.extend)) as _:
        await asyncio.to_thread(publish_all, mosquitto_server.port, [("subonce/m", b"marker")])
        await wait_until(lambda: again)
    assert again == [("subonce/m", b"marker")]


async def test_messages_sent_while_away_arrive_on_return(mosquitto_server: Server) -> None:
    got: list[tuple[str, bytes]] = []
    s = MqttSettings(port=mosquitto_server.port, client_id="sub-away")
    async with subscribed(MqttSubscriber("t", s, ["subaway/+"], got.extend)) as _:
        pass
    sent = [(f"subaway/s{i % 3}", f"{i}".encode()) for i in range(500)]
    await asyncio.to_thread(publish_all, mosquitto_server.port, sent)
    async with subscribed(MqttSubscriber("t", s, ["subaway/+"], got.extend)) as _:
        await wait_until(lambda: len(got) >= len(sent))
    assert got == sent


async def test_an_oversize_message_is_skipped_and_the_next_ones_arrive(
        mosquitto_server: Server) -> None:
    got: list[tuple[str, bytes]] = []
    big: list[tuple[str, int]] = []
    s = MqttSettings(port=mosquitto_server.port, client_id="sub-big")
    sub = MqttSubscriber("t", s, ["subbig/#"], got.extend,
                         on_oversize=lambda t, n: big.append((t, n)), max_payload_bytes=1000)
    async with subscribed(sub) as _:
        await asyncio.to_thread(publish_all, mosquitto_server.port,
                                [("subbig/a", b"1"), ("subbig/huge", b"x" * 3_000_000),
                                 ("subbig/b", b"2")])
        await wait_until(lambda: len(got) >= 2)
    assert got == [("subbig/a", b"1"), ("subbig/b", b"2")]
    assert big == [("subbig/huge", 3_000_000 + 2 + len("subbig/huge") + 2)]
    assert sub.oversize_messages == 1


async def test_tls_with_credentials_and_a_refusal_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with mosquitto_tls(tmp_path) as b:
        got: list[tuple[str, bytes]] = []
        s = MqttSettings(port=b.tls_port, client_id="sub-tls", username=b.username,
                         password=SecretStr(b.password), tls_ca=b.ca)
        async with subscribed(MqttSubscriber("t", s, ["tls/#"], got.extend)) as _:
            await asyncio.to_thread(publish_all, b.tls_port, [("tls/x", b"1")], user=b.username,
                                    password=b.password, ca=b.ca)
            await wait_until(lambda: got)
        assert got == [("tls/x", b"1")]
        wrong = s.model_copy(update={"password": SecretStr("wrong"), "reconnect_max_s": 1,
                                     "client_id": "sub-tls-wrong"})
        sub = MqttSubscriber("t", wrong, ["tls/#"], got.extend)
        caplog.set_level(logging.INFO, logger="edge.mqtt")
        task = asyncio.create_task(sub.run())
        try:
            await wait_until(lambda: sub.refusals.count >= 3)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        said = [r for r in caplog.records if "refused the connection" in r.getMessage()]
        assert len(said) == 1 and "not authorised" in said[0].getMessage()


async def test_no_broker_is_said_once_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    s = MqttSettings(port=free_port(), client_id="sub-none", reconnect_max_s=1)
    sub = MqttSubscriber("t", s, ["x"], lambda b: None)
    task = asyncio.create_task(sub.run())
    try:
        await wait_until(lambda: sub.unreachable >= 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len([r for r in caplog.records if "cannot reach" in r.getMessage()]) == 1


class _Sink:
    """What the parser writes back (PUBACKs): a transport that keeps the bytes. Not a fake
    broker: the parser is tested alone here, against every way of splitting the bytes."""

    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, b: bytes) -> None:
        self.out += b

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _publish(topic: str, payload: bytes, pid: int | None) -> bytes:
    body = _string(topic) + (pid.to_bytes(2, "big") if pid is not None else b"") + payload
    return bytes([0x32 if pid is not None else 0x30]) + _varint(len(body)) + body


async def test_packets_split_anywhere_are_read_the_same() -> None:
    packets = [(f"t/{i}", bytes([i % 256]) * (i * 37 % 300), i + 1 if i % 3 else None)
               for i in range(40)]
    data = b"".join(_publish(*p) for p in packets) + b"\xd0\x00"      # and a PINGRESP
    want = [(t, p) for t, p, _ in packets]
    acks = b"".join(b"\x40\x02" + pid.to_bytes(2, "big") for _, _, pid in packets if pid)
    for step in (1, 2, 3, 7, 128, 129, 1000, len(data)):
        got: Batch = []
        sub = MqttSubscriber("t", MqttSettings(), ["t/#"], got.extend)
        w = _Wire(sub)
        sink = _Sink()
        w.transport = sink  # type: ignore[assignment]
        w.pong = False
        for k in range(0, len(data), step):
            w.data_received(data[k:k + step])
        assert got == want and bytes(sink.out) == acks and w.pong, step
        assert not w.closed.done() and not w.buf


async def test_a_packet_a_subscriber_cannot_take_drops_the_connection() -> None:
    sub = MqttSubscriber("t", MqttSettings(), ["t/#"], lambda b: None)
    w = _Wire(sub)
    w.transport = _Sink()  # type: ignore[assignment]
    w.data_received(b"\x34\x05\x00\x01t\x00\x01")                     # PUBLISH at QoS 2
    assert isinstance(w.closed.result(), ConnectionError)
    assert "QoS 2" in str(w.closed.result())
