"""``make bench``: throughput of the core path alone and end to end, next to the raw InfluxDB
ingest of the same points measured in the same run. Writes bench/results/latest.json.

Everything runs on loopback against private Mosquitto and InfluxDB 1.6.7 instances started
here and stopped at the end; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from alerting.batch import ReadingBatch
from alerting.engine import Engine
from alerting.table import compile_rules
from bench.publisher import write_messages
from bench.workload import messages, synthetic_site
from edge.mqtt import MqttSettings
from gateway.config import InfluxSettings, Settings
from gateway.core import Core
from gateway.influx import NullSink, influx_v1
from gateway.service import gateway_session
from gateway.writer import BatchingWriter
from tests import services

ROOT = Path(__file__).resolve().parent.parent


def bench_rules(n_points: int, n: int) -> float:
    """The alerting engine alone (thresholds only on this plant), readings/s (best of 3)."""
    site = synthetic_site(n_points)
    engine = Engine(compile_rules(site.enterprise))
    rng = np.random.default_rng(2)
    batch = ReadingBatch(np.tile(np.arange(n_points, dtype=np.int32), n // n_points),
                         np.repeat(np.arange(n // n_points, dtype=np.int64) * 1000, n_points),
                         rng.normal(6, 2.5, n), np.zeros(n, np.uint8))
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        engine.process(batch)
        best = max(best, n / (time.perf_counter() - t0))
    return best


async def bench_core(n_points: int, msgs: list[tuple[str, bytes]], step: int) -> float:
    """Decode + rules + line protocol for every message, no I/O: readings/s."""
    site = synthetic_site(n_points)
    async with BatchingWriter(NullSink(), batch_points=5000) as writer:
        core = Core(site, writer)
        t0 = time.perf_counter()
        for i in range(0, len(msgs), step):
            await core.handle(msgs[i:i + step])
        elapsed = time.perf_counter() - t0
    return core.stats.readings / elapsed


async def bench_raw_influx(server: services.Server, n_points: int,
                           msgs: list[tuple[str, bytes]]) -> tuple[float, int]:
    """The same points written straight to InfluxDB (prebuilt bodies, 2 writers): points/s."""
    site = synthetic_site(n_points)
    services.influx_create_db(server, "raw")
    async with BatchingWriter(NullSink()) as nw:
        core = Core(site, nw)
        batch = core.decode(msgs)
    bodies = []
    for i in range(0, len(batch), 5000):
        idx = np.arange(i, min(i + 5000, len(batch)))
        bodies.append(core.lines.readings(batch.take(idx)))
    sink_a = influx_v1(InfluxSettings(url=server.url, database="raw", timeout_s=60))
    sink_b = influx_v1(InfluxSettings(url=server.url, database="raw", timeout_s=60))

    async def run(sink: Any, part: list[bytes]) -> None:
        for body in part:
            await sink.write(body)

    t0 = time.perf_counter()
    await asyncio.gather(run(sink_a, bodies[0::2]), run(sink_b, bodies[1::2]))
    elapsed = time.perf_counter() - t0
    await sink_a.close()
    await sink_b.close()
    return len(batch) / elapsed, len(batch)


async def bench_e2e(mq: services.Server, influx: services.Server, n_points: int,
                    msgs: list[tuple[str, bytes]], timeout_s: float) -> dict[str, float]:
    """Publisher process → Mosquitto → core → InfluxDB: readings/s, with a loss check."""
    site = synthetic_site(n_points)
    services.influx_create_db(influx, "e2e")
    total = sum(len(json.loads(p)["ids"]) for _, p in msgs)
    settings = Settings(mqtt=MqttSettings(port=mq.port, client_id="bench-core"),
                        influx=InfluxSettings(url=influx.url, database="e2e", batch_points=5000,
                                              writers=2, timeout_s=60))
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        path = f.name
    write_messages(path, msgs)
    try:
        async with gateway_session(site, settings) as (core, ingest):
            deadline = time.monotonic() + 10
            while not ingest.subscribed.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.publisher", str(mq.port), path, str(timeout_s),
                stdout=subprocess.PIPE, cwd=str(ROOT))
            deadline = time.monotonic() + timeout_s
            while (core.writer.stats.points_written < total + core.stats.alarm_events
                   and time.monotonic() < deadline):
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - t0
            out, _ = await proc.communicate()
            pub_acked, pub_s = out.decode().split()
    finally:
        os.unlink(path)
    stored = services.influx_query(influx, "e2e", "SELECT count(value) FROM reading")
    n_stored = stored[0]["values"][0][1] if stored else 0
    return {"e2e_readings_per_s": total / elapsed, "e2e_readings_sent": total,
            "e2e_readings_stored": n_stored, "e2e_seconds": elapsed,
            "e2e_publisher_readings_per_s": total / float(pub_s),
            "e2e_publisher_acked_messages": int(pub_acked),
            "e2e_malformed": core.stats.malformed_messages}


def git_commit() -> str:
    """The commit benchmarked (with -dirty when the tree has changes)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Run every benchmark; returns the figures."""
    msgs = messages(args.points, args.per_message, args.messages)
    figures: dict[str, float] = {}
    print(f"workload: {args.points} points, {args.messages} messages × {args.per_message} "
          f"readings = {args.messages * args.per_message} readings", flush=True)
    figures["rules_only_readings_per_s"] = bench_rules(args.points, 1_000_000)
    print(f"rules alone (thresholds, 1M-reading batch):  "
          f"{figures['rules_only_readings_per_s']:>12,.0f} readings/s", flush=True)
    figures["core_readings_per_s"] = await bench_core(args.points, msgs, 20)
    print(f"core path alone (decode+rules+lines, no I/O):{figures['core_readings_per_s']:>12,.0f}"
          " readings/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="hazgw-bench-") as tmp, \
            services.mosquitto(Path(tmp) / "mq") as mq, \
            services.influxdb(Path(tmp) / "influx") as influx:
        raw, _ = await bench_raw_influx(influx, args.points, msgs)
        figures["influx_raw_points_per_s"] = raw
        print(f"raw InfluxDB 1.6.7 ingest (2 writers):       {raw:>12,.0f} points/s",
              flush=True)
        e2e = await bench_e2e(mq, influx, args.points, msgs, args.timeout)
        figures.update(e2e)
    print(f"end to end MQTT → core → InfluxDB:           {figures['e2e_readings_per_s']:>12,.0f}"
          f" readings/s ({figures['e2e_readings_stored']:.0f} of "
          f"{figures['e2e_readings_sent']:.0f} stored)", flush=True)
    figures["e2e_vs_raw_influx"] = figures["e2e_readings_per_s"] / raw
    print(f"end to end / raw InfluxDB:                   {figures['e2e_vs_raw_influx']:>12.2f}")
    return figures


def main() -> int:
    """Parse arguments, run, write bench/results/latest.json."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--points", type=int, default=10_000)
    p.add_argument("--per-message", type=int, default=500)
    p.add_argument("--messages", type=int, default=1200)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = p.parse_args()
    figures = asyncio.run(main_async(args))
    result = {
        "commit": git_commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "node": platform.node()},
        "workload": vars(args) | {"out": None},
        "figures": figures,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
