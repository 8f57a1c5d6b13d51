"""The JetStream transport against a real three-node nats-server cluster: subjects and
partitions as the server maps them, dedup ids, and the edge uplink behind store and
forward."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edge import wire
from edge.forward import StoreAndForward
from edge.jetstream import (
    JetStreamUplink,
    NatsSettings,
    msg_id,
    partition_of,
    subject_of,
    topic_of,
)
from edge.spool import Spool
from gateway.stream.jsingest import ensure_stream
from tests.nats_cluster import NatsCluster, nats_cluster

ENTERPRISES = [f"9132058{i:02d}MA1W3K4X5" for i in range(20)] + ["ent.with.dots"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with nats_cluster(tmp_path_factory.mktemp("nats")) as c:
        yield c


@pytest.fixture
async def stream(cluster: NatsCluster) -> AsyncIterator[NatsSettings]:
    """Settings of a fresh wire stream on the cluster, deleted afterwards (streams may not
    overlap in subjects)."""
    import nats
    s = cluster.settings(stream="WIRE_TEST")
    nc = await nats.connect(servers=s.servers)
    try:
        await ensure_stream(nc.jetstream(), s)
        yield s
        await nc.jetstream().delete_stream(s.stream)
    finally:
        await nc.close()


def message(edge: str, seq: int, boot: int = 1) -> bytes:
    return wire.encode(edge, boot, seq, ["P1"], [1_700_000_000_000 + seq], [1.0], [0])


def test_subjects_round_trip_and_dedup_ids() -> None:
    topic = wire.readings_topic("ent.a", "edge.01")
    assert subject_of(topic) == "hazgw.in.ent~a.edge~01.readings"
    assert topic_of("hazgw.p.3.ent~a.edge~01.readings") == topic
    subject = subject_of(topic)
    assert msg_id(subject, message("edge.01", 42, boot=7)) == "ent~a:edge.01:7:42"
    # anything else gets a digest: the same subject and bytes, the same id
    other = b'{"v":1,"edge":"e"}'
    assert msg_id(subject, other) == msg_id(subject, other) != msg_id(subject, b"{}") \
        != msg_id("hazgw.in.b.edge~01.readings", other)
    for bad in ("mhs/v1/a/b", "other/v1/a/b/c", "mhs/v1/a//readings"):
        with pytest.raises(ValueError, match="not a wire topic"):
            subject_of(bad)
    with pytest.raises(ValueError, match="not a wire subject"):
        topic_of("hazgw.p.1.a.b")


def test_settings_out_of_range_are_refused_by_name() -> None:
    from pydantic import ValidationError
    for bad, field in (({"partitions": 0}, "partitions"), ({"stream": "a.b"}, "stream"),
                       ({"servers": []}, "servers"), ({"replicas": 6}, "replicas"),
                       ({"retention_h": 0}, "retention_h")):
        with pytest.raises(ValidationError, match=field):
            NatsSettings.model_validate(bad)


async def stored_subjects(s: NatsSettings) -> list[str]:
    import nats
    nc = await nats.connect(servers=s.servers)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("hazgw.p.>", stream=s.stream)
        out: list[str] = []
        while True:
            try:
                msgs = await sub.fetch(100, timeout=1.0)
            except nats.errors.TimeoutError:
                return out
            for m in msgs:
                out.append(m.subject)
                await m.ack()
    finally:
        await nc.close()


async def test_every_enterprise_lands_in_the_partition_we_compute_once(
        stream: NatsSettings) -> None:
    s = stream
    # each enterprise through another node, and every message twice (a retry)
    for i, ent in enumerate(ENTERPRISES):
        one = JetStreamUplink(s.model_copy(update={"servers": [s.servers[i % 3]]}), ent)
        for _ in range(2):
            p = await one.send(wire.readings_topic(ent, "e1"), message("e1", 0))
            while not p.is_published():
                await asyncio.sleep(0.01)
            assert p.is_published()
        await one.close()
    subjects = await stored_subjects(s)
    assert len(subjects) == len(ENTERPRISES)           # the second copies were dropped
    got = {topic_of(x).split("/")[2]: int(x.split(".")[2]) for x in subjects}
    assert got == {e: partition_of(e, s.partitions) for e in ENTERPRISES}
    assert len(set(got.values())) > 1


async def test_store_and_forward_over_jetstream_spools_while_away_and_sends_after(
        stream: NatsSettings, tmp_path: Path) -> None:
    """With no node answering, messages go to the edge's disk spool; once a node answers,
    the spool is replayed: every message in the stream once."""
    s = stream
    away = s.model_copy(update={"servers": ["nats://127.0.0.1:1"]})   # nothing listens
    topic = wire.readings_topic("ent-s", "e1")
    spool = Spool(tmp_path / "spool", 1 << 20)
    async with StoreAndForward(JetStreamUplink(away, "away"), spool) as saf:
        for seq in range(5):
            await saf.publish(topic, message("e1", seq))
    assert len(spool) == 5
    spool = Spool(tmp_path / "spool", 1 << 20)
    async with StoreAndForward(JetStreamUplink(s, "back"), spool) as saf:
        for seq in range(5, 10):
            while not saf.uplink.is_connected:
                await asyncio.sleep(0.02)
            await saf.publish(topic, message("e1", seq))
        for _ in range(500):
            if not len(spool) and saf.uplink.acknowledged >= 10:
                break
            await asyncio.sleep(0.02)
    subjects = await stored_subjects(s)
    assert len(subjects) == 10 and len(spool) == 0
