"""Signed wire messages, live through a real Mosquitto into a real InfluxDB 1.6.7: a client
with broker access (anonymous here, as an attacker who got past the ACL would be) forges,
alters, moves and replays messages and publishes the real edge's next sequence numbers;
nothing of it reaches the engine, each is counted by its reason, and every real reading —
signed with the new key or, during a rotation, the old — is stored exactly once.

Seen before: an observer that learned a real edge's boot and seq published 1 000 empty
batches with the next sequence numbers and the core dropped 8 real HH readings as
duplicates; an edge id nobody knew raised an L2 alarm that reached the regulator."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from pydantic import SecretStr, ValidationError

from edge import wire
from edge.agent import EdgeAgent
from edge.mqtt import MqttSettings
from edge.signing import SignatureError, SignedUplink, Verifier, sign, split, verify
from edge.sim.simulator import PlantModel, SimulatedDevice
from edge.stats import stats_topic
from gateway.app import gateway_session
from gateway.settings import InfluxSettings, Settings, SigningSettings
from gateway.sim.ports import free_port
from tests.faults.clients import through_the_gateway
from tests.gateway.test_e2e import RecordingUplink, small_site
from tests.services import Server
from tests.waiting import wait_until

# the security suite (pytest -m security), item 1: forged and replayed messages (signing)
pytestmark = pytest.mark.security

NEW = b"n" * 40
OLD = b"o" * 40
WRONG = b"w" * 40


def test_sign_and_verify() -> None:
    topic, body = "mhs/v1/E/edge-t/readings", b'{"v":1}'
    signed = sign(NEW, topic, body)
    assert split(signed) == (body, signed[len(body) + 14:])
    assert verify([OLD, NEW], topic, signed) == body          # either key of a rotation
    with pytest.raises(SignatureError, match="unsigned"):
        verify([NEW], topic, body)
    with pytest.raises(SignatureError, match="unknown key"):
        verify([OLD], topic, signed)
    with pytest.raises(SignatureError, match="bad signature"):
        verify([NEW], topic.replace("edge-t", "edge-u"), signed)       # moved
    with pytest.raises(SignatureError, match="bad signature"):
        verify([NEW], topic, signed.replace(b'"v":1', b'"v":2'))        # altered
    with pytest.raises(SignatureError, match="malformed signature"):
        verify([NEW], topic, body + b"\n#hmac-sha256 abcdef12 short")
    with pytest.raises(SignatureError, match="unknown key"):       # not ASCII: still refused
        verify([NEW], topic, body + b"\n#hmac-sha256 \xff\xfe " + b"0" * 64)
    v = Verifier({"edge-t": [NEW]})
    assert v.body("edge-x", topic, signed) == body     # need not sign: trailer taken off
    with pytest.raises(SignatureError):
        Verifier({}, required=True).body("edge-x", topic, body)
    with pytest.raises(ValidationError, match="at least 32"):
        SigningSettings(keys={"edge-t": [SecretStr("short")]})
    with pytest.raises(ValidationError, match="at most 2"):
        SigningSettings(keys={"edge-t": [SecretStr("k" * 32)] * 3})


async def test_forged_altered_moved_and_replayed_messages_change_nothing(
        mosquitto_server: Server, influx_server: Server, influx_db: str) -> None:
    site = small_site(free_port())
    code = site.enterprise.code
    topic = wire.readings_topic(code, "edge-t")
    settings = Settings(
        mqtt=MqttSettings(port=mosquitto_server.port, client_id="signed-core"),
        influx=InfluxSettings(url=influx_server.url, database=influx_db, flush_interval_s=0.1),
        signing=SigningSettings(keys={"edge-t": [SecretStr(NEW.decode()),
                                                 SecretStr(OLD.decode())]}))
    now = int(time.time() * 1000)
    boot = now - 60_000
    expected: set[tuple[str, int]] = set()
    messages: list[tuple[str, bytes]] = []
    forged = 0

    def real(seq: int, key: bytes) -> bytes:
        ts = now - 30_000 + seq * 1000
        expected.update({("L1", ts), ("G1", ts)})
        return sign(key, topic, wire.encode("edge-t", boot, seq, ["L1", "G1"], [ts, ts],
                                            [5.0, 2.0], [0, 0]))

    for seq in range(10):
        messages.append((topic, real(seq, NEW if seq < 6 else OLD)))     # rotation
        # the next sequence numbers, unsigned and signed with a key the core does not hold
        spoof = wire.encode("edge-t", boot, seq + 1, ["G1"], [now], [60.0], [0])
        messages += [(topic, spoof), (topic, sign(WRONG, topic, spoof))]
        forged += 2
    good = real(10, NEW)
    # altered after signing (an L2 reading written in), and the same moved to a stats topic
    messages.append((topic, good.replace(b"2.0", b"60.0")))
    messages.append((stats_topic(code, "edge-t"), good))
    forged += 2
    messages.append((topic, good))
    messages.append((topic, good))                       # replayed: a duplicate, dropped
    core, stored = await through_the_gateway(mosquitto_server.port, "signed-attacker", site,
                                             settings, messages, influx_server, influx_db)
    assert stored == expected
    assert core.boundary.refused["bad_signature"] == forged
    assert core.stats.duplicate_messages == 1 and core.stats.accepted_messages == 11
    assert not core.standing()                  # no forged 60 %LEL ever reached the engine


async def test_a_signing_edge_over_modbus_and_mqtt_loses_nothing(
        mosquitto_server: Server) -> None:
    site = small_site(free_port())
    dev = site.edges["edge-t"].modbus["plc"]
    points = {pid: p for pid, (_, _, p) in site.enterprise.points().items()}
    sim = SimulatedDevice(dev, PlantModel(points))
    await sim.start()
    run = uuid.uuid4().hex[:8]
    mqtt = MqttSettings(port=mosquitto_server.port, client_id=f"core-{run}")
    settings = Settings(mqtt=mqtt, influx=InfluxSettings(kind="none"), signing=SigningSettings(
        keys={"edge-t": [SecretStr(NEW.decode())]}, required=True))
    try:
        async with gateway_session(site, settings) as (core, ingest):
            await wait_until(ingest.subscribed.is_set, 10)
            recording = RecordingUplink(mqtt.model_copy(update={"client_id": f"edge-{run}"}))
            edge = EdgeAgent(site.enterprise.code, "edge-t", site.edges["edge-t"],
                             SignedUplink(recording, NEW))
            task = asyncio.create_task(edge.run())
            await wait_until(lambda: edge.readings_published >= 60, 20)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await recording.close()
            published = edge.readings_published
            await wait_until(lambda: core.stats.readings >= published, 10)
    finally:
        await sim.stop()
    assert core.stats.readings == published
    assert core.boundary.refused["bad_signature"] == 0 and core.stats.malformed_messages == 0
    assert all(split(p)[1] is not None for p in recording.payloads)
