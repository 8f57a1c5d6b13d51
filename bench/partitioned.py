"""The partitioned path: ``hazgw cluster`` instances reading a NATS JetStream cluster.

A private three-node nats-server cluster (R3 stream), InfluxDB 1.6.7 and a fresh
PostgreSQL database. The stream is filled first (``ENTERPRISES`` enterprises, every rule
kind on each point (``RULES``), messages of 500 readings, published through the JetStream API with
dedup ids); then 1, 2 and 3 instances (each run on a fresh InfluxDB database and state)
read it all: readings/s from the first reading stored to the last, and the CPU the
instances spent per reading (utime + stime from /proc). On 2 cores the total cannot grow
with instances; what must stay flat is the CPU per reading. Last, the failover: with two
instances caught up, one is SIGKILLed and a probe message per enterprise published; the
time until every probe reading is stored (lease loss → new owner processing).

``python -m bench.partitioned`` prints the figures; ``make bench`` runs it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.workload import ALL_RULES, PERSONS, point_ids, values
from edge import wire
from edge.jetstream import NatsSettings, msg_id, subject_of
from gateway.stream.jsingest import ensure_stream
from tests import services
from tests.conftest import fresh_postgres
from tests.nats_cluster import NatsCluster, nats_cluster

ENTERPRISES = [f"91320582MA1W3K5{i:03d}" for i in range(12)]
# Every rule kind, but a day before a point is stale: the stream is filled before the
# instances read it, minutes later, and readings that old would make every point stale
# (an alarm event per point, recorded and escalated: the bench would measure that flood)
RULES = {**ALL_RULES, "stale_after_s": 86_400}
EDGE = "edge-b"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def write_deployment(d: Path, points: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    pts = {pid: RULES for pid in point_ids(points)}
    for code in ENTERPRISES:
        (d / f"{code}.yaml").write_text(yaml.safe_dump({"enterprise": {
            "code": code, "name": f"bench {code[-3:]}", "division": "320582",
            "industry": "C2614", "hazard_sources": {"farm": {
                "name": "farm", "unit_type": "storage", "exposed_population_500m": 0,
                "responsible_persons": PERSONS,
                "equipment": {"T": {"kind": "tank", "points": pts}}}}}}))


async def fill(s: NatsSettings, points: int, per_message: int, messages: int,
               t0: int, seq0: int = 0) -> int:
    """Publish ``messages`` per enterprise (concurrently, acked); returns readings."""
    import nats
    ids = point_ids(points)
    rng = np.random.default_rng(7)
    nc = await nats.connect(servers=s.servers)
    try:
        js = nc.jetstream(timeout=10)
        await ensure_stream(js, s)
        n = 0
        for seq in range(seq0, seq0 + messages):
            lo = (seq * per_message) % points
            chunk = ids[lo:lo + per_message]
            ts = np.full(len(chunk), t0 + seq * 1000, np.int64)
            pubs = []
            for code in ENTERPRISES:
                payload = wire.encode(EDGE, 1, seq, chunk, ts, values(rng, len(chunk)),
                                      np.zeros(len(chunk), np.uint8))
                subject = subject_of(wire.readings_topic(code, EDGE))
                pubs.append(js.publish(subject, payload,
                                       headers={"Nats-Msg-Id": msg_id(subject, payload)}))
                n += len(chunk)
            await asyncio.gather(*pubs)
        return n
    finally:
        await nc.close()


def start_instance(tmp: Path, name: str, cluster: NatsCluster, pg: str,
                   influx: services.Server, db: str, broker: services.Server,
                   ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HAZGW_CLUSTER__INSTANCE": name,
           "HAZGW_NATS__SERVERS": "[" + ",".join(f'"{u}"' for u in cluster.urls) + "]",
           "HAZGW_NATS__PARTITIONS": str(cluster.partitions),
           "HAZGW_MQTT__PORT": str(broker.port), "HAZGW_DATABASE_URL": pg,
           "HAZGW_INFLUX__URL": influx.url, "HAZGW_INFLUX__DATABASE": db,
           "HAZGW_INFLUX__SPOOL_DIR": str(tmp / f"spool-{db}-{name}"),
           "HAZGW_STATE__DIR": str(tmp / f"state-{db}")}
    with (tmp / f"{db}-{name}.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "gateway.cli", "cluster",
                                 str(tmp / "deployment")], env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def cpu_s(pid: int) -> float:
    """utime + stime of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def stored(influx: services.Server, db: str) -> int:
    try:
        series = services.influx_query(influx, db, "SELECT count(value) FROM reading")
    except Exception:       # the database not made yet
        return 0
    return int(series[0]["values"][0][1]) if series else 0


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def run(k: int, tmp: Path, cluster: NatsCluster, pg: str, influx: services.Server,
        broker: services.Server, total: int, timeout_s: float) -> dict[str, float]:
    """``k`` instances read the whole stream into a fresh database."""
    db = f"part{k}"
    services.influx_create_db(influx, db)
    procs = [start_instance(tmp, f"gw-{k}-{i}", cluster, pg, influx, db, broker)
             for i in range(k)]
    try:
        deadline = time.monotonic() + timeout_s
        first = None
        n = 0
        while time.monotonic() < deadline:
            n = stored(influx, db)
            if n and first is None:
                first = time.monotonic()
                cpu0 = sum(cpu_s(p.pid) for p in procs)
            if n >= total:
                break
            time.sleep(0.25)
        done = time.monotonic()
        cpu = sum(cpu_s(p.pid) for p in procs) - cpu0 if first is not None else 0.0
    finally:
        stop(procs)
    rate = n / (done - first) if first is not None and done > first else 0.0
    return {"readings_per_s": rate, "stored": n,
            "cpu_us_per_reading": 1e6 * cpu / n if n else 0.0}


def failover(tmp: Path, cluster: NatsCluster, pg: str, influx: services.Server,
             broker: services.Server, s: NatsSettings, points: int, total: int,
             messages: int, timeout_s: float) -> float:
    """Two instances caught up; one SIGKILLed; seconds until every enterprise's probe
    reading, published just after, is stored."""
    db = "failover"
    services.influx_create_db(influx, db)
    procs = [start_instance(tmp, f"gw-f-{i}", cluster, pg, influx, db, broker)
             for i in range(2)]
    try:
        deadline = time.monotonic() + timeout_s
        while stored(influx, db) < total and time.monotonic() < deadline:
            time.sleep(0.25)
        time.sleep(2)                           # both settled on their partitions
        procs[0].kill()
        killed = time.monotonic()
        probe_t0 = int(time.time() * 1000) - messages * 1000    # its seq: stamped now
        n = asyncio.run(fill(s, points, 1, 1, probe_t0, seq0=messages))   # the next seq
        want = total + n
        while stored(influx, db) < want and time.monotonic() < killed + timeout_s:
            time.sleep(0.05)
        return time.monotonic() - killed
    finally:
        stop(procs)


def figures(points: int = 1000, per_message: int = 500, messages: int = 600,
            instances: tuple[int, ...] = (1, 2, 3), timeout_s: float = 300) -> dict[str, Any]:
    """The partitioned figures (see the module docstring)."""
    out: dict[str, Any] = {"partitioned_enterprises": len(ENTERPRISES)}
    with tempfile.TemporaryDirectory(prefix="hazgw-part-") as name, \
            contextlib.ExitStack() as stack:
        tmp = Path(name)
        cluster = stack.enter_context(nats_cluster(tmp / "nats"))
        influx = stack.enter_context(services.influxdb(tmp / "influx"))
        broker = stack.enter_context(services.mosquitto(tmp / "mq"))
        pg = stack.enter_context(fresh_postgres())
        write_deployment(tmp / "deployment", points)
        s = cluster.settings()
        t0 = int(time.time() * 1000) - messages * 1000 - 120_000
        t = time.monotonic()
        total = asyncio.run(fill(s, points, per_message, messages, t0))
        out["partitioned_fill_readings_per_s"] = total / (time.monotonic() - t)
        out["partitioned_readings"] = total
        for k in instances:
            r = run(k, tmp, cluster, pg, influx, broker, total, timeout_s)
            out[f"partitioned_{k}_readings_per_s"] = r["readings_per_s"]
            out[f"partitioned_{k}_cpu_us_per_reading"] = r["cpu_us_per_reading"]
            out[f"partitioned_{k}_lost"] = total - r["stored"]
        out["partitioned_failover_s"] = failover(tmp, cluster, pg, influx, broker, s, points,
                                                 total, messages, timeout_s)
        taken = re.findall(r"partition (\d+) taken", (tmp / "failover-gw-f-1.log").read_text())
        out["partitioned_failover_partitions"] = len(set(taken))
    return out


def report(f: dict[str, Any], say: Any) -> None:
    """Print the figures with ``say(label, value, unit)``."""
    say(f"partitioned: stream filled through JetStream (R3, {f['partitioned_enterprises']} "
        "enterprises)", f["partitioned_fill_readings_per_s"], "readings/s")
    for k in (1, 2, 3):
        if f"partitioned_{k}_readings_per_s" in f:
            say(f"  {k} instance(s) reading it all", f[f"partitioned_{k}_readings_per_s"],
                "readings/s")
            say("    their CPU per reading", f[f"partitioned_{k}_cpu_us_per_reading"], "µs")
            say("    readings lost", f[f"partitioned_{k}_lost"], "readings")
    say("  failover: SIGKILL of an instance → every probe stored",
        f["partitioned_failover_s"], "s")


if __name__ == "__main__":
    def _say(label: str, value: float, unit: str) -> None:
        print(f"{label:<70} {value:>14,.1f} {unit}")
    report(figures(), _say)
