"""Many enterprises, several instances, on their worst day: 20 enterprises (each with an
edge of the same id) publish through the JetStream API into a real three-node nats-server
cluster; two ``hazgw cluster`` instances share the 8 partitions through PostgreSQL leases.
Mid-stream a NATS node is SIGKILLed (and started again), one instance is SIGKILLed, and a
third instance joins. Every reading the stream acknowledged is in InfluxDB, each
(enterprise, point, time) once, and every enterprise's alarm events equal those of one
uninterrupted engine over its messages: the timeline of a run without faults.

It also measures the failover: from the SIGKILL to the last of the dead instance's
partitions taken by another instance (printed; the bench has its own figure)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge import wire
from edge.jetstream import JetStreamUplink, NatsSettings, Pending
from gateway.stream.jsingest import alarm_stream
from tests import services
from tests.conftest import fresh_postgres
from tests.faults.clients import client
from tests.faults.test_crash import EDGE, engine_events, site_file, wait_for
from tests.nats_cluster import NatsCluster, nats_cluster
from tests.services import Server, influx_query

ENTERPRISES = [f"91320582MA1W3K4{i:03d}" for i in range(20)]
POINTS = [f"P{i}" for i in range(5)]
RATE_S = 10                     # messages per second per enterprise (of 5 readings)
SECONDS = 30                    # of publishing, bounded
# Each point in turn is above its limit for HOT_FOR messages; readings are stamped 500 ms
# apart (data time runs 5x the wall clock, well within the accepted 5 minutes ahead), so a
# point alarms once every 62.5 s of data time: never chattering (3 within 60 s), whose end
# the gateway's clock decides, not the data.
HOT_FOR = 25
TS_STEP_MS = 500


def values(seq: int) -> np.ndarray:
    vals = np.full(len(POINTS), 5.0) + (seq % 7) * 0.01
    vals[(seq // HOT_FOR) % len(POINTS)] = 11.0
    return vals


FEED = "partitioned/regulator-feed"
# every alarm told to the regulator at once (step 0) and again after 2 s while unhandled
ESCALATION = {"escalation": {"default": {p: {"steps": [
    {"after_s": 0, "roles": ["regulator"]}, {"after_s": 2, "roles": ["regulator"]}]}
    for p in (1, 2, 3)}},
    "contacts": {"default": {"regulator": [{"channel": "mqtt", "target": FEED}]}}}


def write_deployment(d: Path) -> Path:
    d.mkdir(parents=True)
    for code in ENTERPRISES:
        site_file(d / f"{code}.yaml", code, POINTS, ESCALATION, division="320582",
                  industry="C2614")
    return d


class Edges:
    """One JetStream uplink per enterprise's edge, all on one event loop of a thread of
    their own; keeps what the stream acknowledged, per enterprise."""

    def __init__(self, s: NatsSettings) -> None:
        self.settings = s
        self.messages: dict[str, list[tuple[int, int]]] = {e: [] for e in ENTERPRISES}
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()),
                                       name="js-edges")

    async def _run(self) -> None:
        ups = {e: JetStreamUplink(self.settings, f"edge-{e[-3:]}") for e in ENTERPRISES}
        while not all(u.is_connected for u in ups.values()):
            await asyncio.sleep(0.02)
        t0 = int(time.time() * 1000)
        pending: list[tuple[str, Pending, int, int]] = []
        start = time.monotonic()
        for seq in range(SECONDS * RATE_S):
            ts = t0 + seq * TS_STEP_MS
            for e, up in ups.items():
                payload = wire.encode(EDGE, 1, seq, POINTS, np.full(len(POINTS), ts),
                                      values(seq), np.zeros(len(POINTS), np.uint8))
                pending.append((e, await up.send(wire.readings_topic(e, EDGE), payload),
                                seq, ts))
            await asyncio.sleep(max(0.0, start + (seq + 1) / RATE_S - time.monotonic()))
        deadline = time.monotonic() + 60
        while not all(p.is_published() for _, p, _, _ in pending) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for e, p, seq, ts in pending:
            if p.is_published():
                self.messages[e].append((seq, ts))
        await asyncio.gather(*(u.close(timeout_s=1) for u in ups.values()))

    def sent(self) -> set[tuple[str, str, int]]:
        return {(e, pid, ts) for e, ms in self.messages.items() for _, ts in ms
                for pid in POINTS}

    def __enter__(self) -> Edges:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(SECONDS + 70)      # it ends by itself after SECONDS


def start_instance(tmp: Path, name: str, cluster: NatsCluster, pg: str, influx: Server,
                   db: str, broker: Server) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HAZGW_CLUSTER__INSTANCE": name, "HAZGW_CLUSTER__STATS_EVERY_S": "1",
           "HAZGW_NATS__SERVERS": "[" + ",".join(f'"{u}"' for u in cluster.urls) + "]",
           "HAZGW_NATS__PARTITIONS": str(cluster.partitions),
           "HAZGW_MQTT__PORT": str(broker.port), "HAZGW_DATABASE_URL": pg,
           "HAZGW_INFLUX__URL": influx.url, "HAZGW_INFLUX__DATABASE": db,
           "HAZGW_INFLUX__SPOOL_DIR": str(tmp / f"spool-{name}"),
           "HAZGW_STATE__DIR": str(tmp / "state")}          # shared: the state moves
    with (tmp / f"{name}.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "gateway.cli", "cluster",
                                 str(tmp / "deployment")], env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def log_of(tmp: Path, name: str) -> str:
    return (tmp / f"{name}.log").read_text(errors="replace")


def taken(tmp: Path, name: str) -> dict[int, float]:
    """Partition -> when (Unix s) the instance last took it, from its log."""
    out: dict[int, float] = {}
    for m in re.finditer(r"^(\S+ \S+) INFO \S+: cluster: partition (\d+) taken",
                         log_of(tmp, name), re.M):
        out[int(m.group(2))] = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"
                                                 ).timestamp()
    return out


async def alarm_stream_events(s: NatsSettings) -> list[Event]:
    """The process alarm events in the alarm stream, in stream order."""
    import nats
    nc = await nats.connect(servers=s.servers)
    try:
        js = nc.jetstream()
        info = await js.stream_info(alarm_stream(s))
        out: list[Event] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            m = json.loads((await js.get_msg(alarm_stream(s), seq)).data or b"{}")
            if m["alarm_type"] == "process":
                out.append((m["enterprise"], m["point"], m["ts"], m["event"], m["state"]))
        return out
    finally:
        await nc.close()


def stored(influx: Server, db: str) -> set[tuple[str, str, int]]:
    out: set[tuple[str, str, int]] = set()
    for s in influx_query(influx, db, 'SELECT "value" FROM reading GROUP BY enterprise, point'):
        out.update((s["tags"]["enterprise"], s["tags"]["point"], int(r[0]))
                   for r in s["values"])
    return out


Event = tuple[str, str, int, str, str]          # enterprise, point, time, event, state


def expected_events(dep: Path, messages: dict[str, list[tuple[int, int]]]) -> set[Event]:
    """Each enterprise's process alarm events from an uninterrupted engine of its own."""
    return {(e, p, ts, ev, st) for e, ms in messages.items()
            for (p, kind, ts), (ev, st) in engine_events(dep / f"{e}.yaml", POINTS, ms,
                                                         values).items()
            if kind == "process"}


def stored_events(influx: Server, db: str) -> set[Event]:
    out: set[Event] = set()
    for s in influx_query(influx, db, 'SELECT "event", "state" FROM alarm_event WHERE '
                                      "alarm_type = 'process' GROUP BY enterprise, point"):
        out.update((s["tags"]["enterprise"], s["tags"]["point"], int(t), ev, st)
                   for t, ev, st in s["values"])
    return out


def test_instances_and_a_node_killed_and_one_added_lose_nothing_and_keep_the_timeline(
        tmp_path: Path, influx_server: Server, influx_db: str) -> None:
    dep = write_deployment(tmp_path / "deployment")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    notices: list[dict[str, Any]] = []
    with nats_cluster(tmp_path / "nats") as cluster, fresh_postgres() as pg, \
            services.mosquitto(tmp_path / "mq") as broker, contextlib.ExitStack() as stack:
        def start(name: str) -> None:
            procs[name] = start_instance(tmp_path, name, cluster, pg, influx_server,
                                         influx_db, broker)
        stack.enter_context(client(broker.port, "regulator-feed", FEED, notices))
        try:
            start("gw-a")
            wait_for(lambda: len(taken(tmp_path, "gw-a")) == cluster.partitions, 90,
                     "gw-a owns every partition")
            start("gw-b")
            wait_for(lambda: bool(taken(tmp_path, "gw-b")), 90, "gw-b takes its share")
            with Edges(cluster.settings()) as edges:
                time.sleep(6)
                cluster.kill(1)                     # a NATS node, mid-stream
                time.sleep(4)
                cluster.start(1)
                time.sleep(2)
                owned_a = set(taken(tmp_path, "gw-a")) - set(taken(tmp_path, "gw-b"))
                procs["gw-a"].kill()                # an instance, mid-stream
                killed_at = time.time()
                procs["gw-a"].wait(30)
                wait_for(lambda: owned_a <= {p for p, t in taken(tmp_path, "gw-b").items()
                                             if t >= killed_at}, 60, "gw-b takes over")
                failover = max(taken(tmp_path, "gw-b")[p] for p in owned_a) - killed_at
                restored_ages = sorted({int(m.group(2)) for m in re.finditer(
                    r"^(\S+ \S+) INFO \S+: state: restored .* saved (\d+) s before",
                    log_of(tmp_path, "gw-b"), re.M)
                    if datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    >= killed_at})
                time.sleep(2)
                start("gw-c")                       # an instance joins
                wait_for(lambda: bool(taken(tmp_path, "gw-c")), 60, "gw-c takes its share")
            sent = edges.sent()
            wait_for(lambda: stored(influx_server, influx_db) >= sent, 120,
                     "every reading stored", required=False)
            for name in ("gw-b", "gw-c"):
                procs[name].send_signal(signal.SIGTERM)
            for name in ("gw-b", "gw-c"):
                assert procs[name].wait(90) == 0, log_of(tmp_path, name)[-3000:]
            time.sleep(1)                           # the last notices on their way
            on_stream = asyncio.run(alarm_stream_events(cluster.settings()))
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait(30)
    print(f"failover: {failover:.2f} s from SIGKILL to the last of {len(owned_a)} "
          f"partitions taken by gw-b; the states it restored were saved {restored_ages} s "
          f"before: at most that long of messages ({RATE_S}/s per enterprise) read again")
    assert sum(map(len, edges.messages.values())) >= \
        len(ENTERPRISES) * SECONDS * RATE_S * 9 // 10
    got = stored(influx_server, influx_db)
    lost: dict[str, list[int]] = {}
    for e, _, ts in sent - got:
        lost.setdefault(e, []).append(ts)
    assert not lost, f"{len(sent - got)} of {len(sent)} readings lost: " + "; ".join(
        f"{e}: {len(t)} from {min(t)} to {max(t)}" for e, t in sorted(lost.items()))
    assert got == sent
    # no notification sent twice, each about an activation that happened
    keys = [d["key"] for d in notices]
    twice = {k for k in keys if keys.count(k) > 1}
    assert not twice, f"{len(twice)} notifications sent twice: {sorted(twice)[:3]}"
    activations = {(e, p, ts) for e, p, ts, ev, _ in
                   expected_events(dep, edges.messages) if ev == "activate"}
    told = {(d["enterprise"], d["point"], d["annunciated_ms"]) for d in notices}
    assert told and told <= activations
    want, have = expected_events(dep, edges.messages), stored_events(influx_server, influx_db)
    assert len(want) >= len(ENTERPRISES) * SECONDS * RATE_S // HOT_FOR
    assert not want - have, f"alarm events lost: {sorted(want - have)[:5]}"
    assert not have - want, f"alarm events not made by the uninterrupted engines: " \
                            f"{sorted(have - want)[:5]}"
    # the alarm stream: each event once, the same as InfluxDB holds
    assert len(on_stream) == len(set(on_stream)), "alarm events twice on the stream"
    assert set(on_stream) == want
