"""The MQTT relay against a real Mosquitto and a real three-node nats-server cluster: an
MQTT-only edge's messages reach the stream once each and in order, across the death of the
stream's leader and a restart of the relay; a topic that cannot be a subject is dropped and
counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge import wire
from edge.mqtt import MqttSettings
from edge.mqttrelay import MqttRelay
from gateway.stream.jsingest import ensure_stream
from tests import services
from tests.edge.test_jetstream import message
from tests.faults.clients import client
from tests.nats_cluster import nats_cluster
from tests.waiting import wait_until

ENT = "91320582MA1W3K4X5R"
N = 400


async def stream_contents(servers: list[str], stream: str, at_least: int,
                          ) -> list[tuple[str, int]] | None:
    """(subject, wire seq) of every message in the stream, in stream order, once it holds
    ``at_least``; None before, or while the stream does not answer (a leader being elected
    after the kill, slower on a busy machine)."""
    import nats
    nc = await nats.connect(servers=servers)
    try:
        js = nc.jetstream(timeout=5)
        info = await js.stream_info(stream)
        if info.state.messages < at_least:
            return None
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            m = await js.get_msg(stream, seq)
            out.append((str(m.subject), wire.decode(m.data or b"").seq))
        return out
    except (TimeoutError, nats.errors.Error):
        return None
    finally:
        await nc.close()


async def test_relayed_once_each_in_order_across_a_leader_kill_and_a_relay_restart(
        tmp_path: Path) -> None:
    with nats_cluster(tmp_path / "nats") as cluster, \
            services.mosquitto(tmp_path / "mq") as broker:
        s = cluster.settings()
        import nats
        nc = await nats.connect(servers=s.servers)
        try:
            await ensure_stream(nc.jetstream(), s)
            leader = (await nc.jetstream().stream_info(s.stream)).cluster
        finally:
            await nc.close()
        assert leader is not None
        ms = MqttSettings(port=broker.port, client_id="relay-test")
        topic = wire.readings_topic(ENT, "e1")
        with client(broker.port, "mqtt-only-edge") as edge:
            relay = MqttRelay(ms, s)
            stop = asyncio.Event()
            task = asyncio.create_task(relay.run(stop))
            try:
                await wait_until(relay.conn.subscribed.is_set, 10)
                edge.publish(f"mhs/v1/{ENT}/bad level/readings", b"{}", qos=1)
                for seq in range(N):
                    edge.publish(topic, message("e1", seq), qos=1)
                    if seq == N // 4:
                        cluster.kill([n.name for n in cluster.layout].index(str(leader.leader)))
                    if seq == N // 2:
                        stop.set()                      # the relay stops mid-stream ...
                        await task
                        refused = relay.refused
                        relay = MqttRelay(ms, s)        # ... and another takes over
                        stop = asyncio.Event()
                        task = asyncio.create_task(relay.run(stop))
                    await asyncio.sleep(0.005)
                got: list[tuple[str, int]] | None = None
                for _ in range(120):                    # bounded: ~60 s and the answers
                    got = await stream_contents(s.servers, s.stream, N)
                    if got is not None:
                        break
                    await asyncio.sleep(0.5)
            finally:
                stop.set()
                await task
    assert got is not None, "the stream never held every message"
    assert refused == 1
    assert [seq for _, seq in got] == list(range(N))      # once each, in order
    assert {subj for subj, _ in got} == {f"hazgw.p.{p}.{ENT}.e1.readings"
                                         for p in {int(got[0][0].split(".")[2])}}
