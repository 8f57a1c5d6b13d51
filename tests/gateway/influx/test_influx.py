"""The InfluxDB targets against real servers: InfluxDB 1.6.7 (v1) and VictoriaMetrics (v2)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from alerting.batch import ReadingBatch
from gateway.influx.schema import LineBuilder
from gateway.influx.targets import (
    InfluxV2Sink,
    MissingDatabaseError,
    PermanentError,
    RetryableError,
    ThrottledError,
    influx_v1,
)
from gateway.influx.writer import BatchingWriter
from gateway.settings import InfluxSettings
from gateway.sim.ports import free_port
from tests import services
from tests.services import Server, influx_query

TAGS = [{"enterprise": "E1", "source": "lpg farm", "equipment": "V,101", "point": "L=1",
         "kind": "level"},
        {"enterprise": "E1", "source": "lpg", "equipment": "V102", "point": "L2",
         "kind": "level"}]


def sample_batch(n: int = 1000) -> ReadingBatch:
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64)
    vals = np.linspace(0, 10, n)
    vals[5] = np.nan
    q = np.zeros(n, np.uint8)
    q[5] = 2
    return ReadingBatch((np.arange(n) % 2).astype(np.int32), ts, vals, q)


async def test_v1_write_round_trips_values_quality_and_escaped_tags(
        influx_server: Server, influx_db: str) -> None:
    batch = sample_batch()
    sink = influx_v1(InfluxSettings(url=influx_server.url, database=influx_db, gzip=True))
    try:
        await sink.write(LineBuilder(TAGS).readings(batch))
    finally:
        await sink.close()
    rows = influx_query(influx_server, influx_db,
                        'SELECT value, quality FROM reading WHERE point = \'L=1\'')
    values = rows[0]["values"]
    assert isinstance(values, list)
    assert len(values) == 500
    by_ts = {r[0]: (r[1], r[2]) for r in values}
    assert by_ts[1_700_000_000_000] == (0.0, 0)
    # the bad reading (index 5, point L2) has no value: stored with its quality only
    rows = influx_query(influx_server, influx_db,
                        "SELECT value, quality FROM reading WHERE time = 1700000000005ms")
    assert rows[0]["values"] == [[1_700_000_000_005, None, 2]]
    tags = influx_query(influx_server, influx_db,
                        'SHOW TAG VALUES FROM reading WITH KEY = "source"')
    assert sorted(v[1] for v in tags[0]["values"]) == ["lpg", "lpg farm"]


async def test_v1_classifies_a_missing_database_as_retryable_and_bad_lines_as_permanent(
        influx_server: Server, influx_db: str) -> None:
    missing = influx_v1(InfluxSettings(url=influx_server.url,
                                       database=f"no_such_{uuid.uuid4().hex[:8]}"))
    bad = influx_v1(InfluxSettings(url=influx_server.url, database=influx_db))
    try:
        with pytest.raises(MissingDatabaseError, match=r"HTTP 404.*database not found"):
            await missing.write(b"reading,point=a value=1 1700000000000\n")
        await missing.write(b"reading,point=a value=1 1700000000000\n")   # created
        with pytest.raises(PermanentError, match="HTTP 400"):
            await bad.write(b"reading,point=a value=oops 1700000000000\n")
    finally:
        await missing.close()
        await bad.close()


async def test_unreachable_server_is_retryable() -> None:
    sink = influx_v1(InfluxSettings(url=f"http://127.0.0.1:{free_port()}", timeout_s=2))
    try:
        with pytest.raises(RetryableError):
            await sink.write(b"reading,point=a value=1 1700000000000\n")
    finally:
        await sink.close()


def vm_export(server: Server, match: str) -> list[dict[str, Any]]:
    urllib.request.urlopen(f"{server.url}/internal/force_flush", timeout=10).read()
    q = urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(f"{server.url}/api/v1/export?{q}", timeout=10) as r:
        return [json.loads(line) for line in r.read().splitlines() if line.strip()]


async def test_v2_write_through_influxdb_client_reaches_victoria_metrics(
        vm_server: Server) -> None:
    batch = sample_batch(200)
    tags = [{**t, "enterprise": "E_v2"} for t in TAGS]
    sink = InfluxV2Sink(InfluxSettings(kind="v2", url=vm_server.url, org="o", bucket="b",
                                       token=None, gzip=True))
    try:
        await sink.write(LineBuilder(tags).readings(batch))
    finally:
        await sink.close()
    series = vm_export(vm_server, '{__name__="reading_value",enterprise="E_v2"}')
    total = sum(len(s["values"]) for s in series)
    assert total == 199  # one reading had no value
    points = {s["metric"]["point"] for s in series}
    assert points == {"L=1", "L2"}


async def test_writer_honours_retry_after_then_delivers() -> None:
    # A fake stands in here: no real InfluxDB or VictoriaMetrics answers 429 with a
    # Retry-After on demand.
    calls: list[float] = []

    async def write(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        await request.read()
        if len(calls) == 1:
            return web.Response(status=429, headers={"Retry-After": "0.3"}, text="slow down")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        sink = influx_v1(InfluxSettings(url=f"http://127.0.0.1:{port}"))
        async with BatchingWriter(sink, batch_points=10, writers=1) as w:
            await w.put(b"reading,point=a value=1 1\n", 1)
            await w.flush()
        assert w.stats.throttled == 1 and w.stats.points_written == 1
        assert calls[1] - calls[0] >= 0.29
    finally:
        await runner.cleanup()


def test_throttled_error_parses_retry_after() -> None:
    from gateway.influx.targets import classify
    e = classify(503, "busy", "2")
    assert isinstance(e, ThrottledError) and e.retry_after_s == 2.0
    assert isinstance(classify(500, "x", None), RetryableError)
    assert isinstance(classify(401, "x", None), PermanentError)


async def test_writer_keeps_data_while_influxdb_is_down_and_delivers_after(
        tmp_path: Path) -> None:
    with services.influxdb(tmp_path / "influx") as server:
        services.influx_create_db(server, "down")
        server.stop()
        sink = influx_v1(InfluxSettings(url=server.url, database="down", timeout_s=2))
        builder = LineBuilder(TAGS)
        async with BatchingWriter(sink, batch_points=100, writers=2, max_backoff_s=0.5) as w:
            batch = sample_batch(1000)
            await w.put(builder.readings(batch), len(batch))
            # let the writer fail a few times against the stopped server
            for _ in range(100):
                if w.stats.retries >= 2:
                    break
                await asyncio.sleep(0.05)
            assert w.stats.retries >= 2
            server.start_again(services.INFLUX_READY)
            await w.flush()
        assert w.stats.points_written == 1000 and w.stats.rejected_points == 0
        assert services.stored_readings(server, "down") == 1000


async def test_writer_counts_what_it_could_not_deliver_at_close() -> None:
    sink = influx_v1(InfluxSettings(url=f"http://127.0.0.1:{free_port()}", timeout_s=1))
    async with BatchingWriter(sink, batch_points=10, writers=1, max_backoff_s=0.1,
                              close_timeout_s=0.5) as w:
        await w.put(b"reading,point=a value=1 1\n" * 25, 25)
    assert w.stats.points_written == 0
    assert w.stats.unwritten_points_at_close == 25 and w.stats.retries >= 1


async def test_a_missing_database_is_created_and_nothing_is_dropped(
        influx_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Seen before: 404 database not found counted as permanent, 213 points dropped for
    good (the first alarm events of a scenario among them)."""
    db = f"created_{uuid.uuid4().hex[:8]}"
    sink = influx_v1(InfluxSettings(url=influx_server.url, database=db))
    with caplog.at_level(logging.WARNING, logger="gateway.influx.targets"):
        async with BatchingWriter(sink, max_backoff_s=0.2) as w:
            await w.put(b"reading,point=a value=1 1700000000000\n", 1)
            await w.flush()
    assert w.stats.rejected_points == 0 and w.stats.points_written == 1
    assert any("did not exist: created it" in r.getMessage() for r in caplog.records)
    assert influx_query(influx_server, db, "SELECT count(value) FROM reading")[0][
        "values"][0][1] == 1


async def test_a_partial_write_counts_only_the_refused_lines(
        influx_server: Server, influx_db: str) -> None:
    """Seen before: the whole batch counted as rejected although InfluxDB stored the rest."""
    sink = influx_v1(InfluxSettings(url=influx_server.url, database=influx_db))
    async with BatchingWriter(sink) as w:
        await w.put(b"m,point=a value=1 1700000000000\n", 1)
        await w.flush()
        # the second line's field type conflicts with the stored float: refused alone
        await w.put(b"m,point=b value=2 1700000000001\nm,point=c value=\"x\" 1700000000002\n"
                    b"m,point=d value=4 1700000000003\n", 3)
        await w.flush()
    assert (w.stats.rejected_points, w.stats.points_written) == (1, 3)
    assert influx_query(influx_server, influx_db, "SELECT count(value) FROM m")[0][
        "values"][0][1] == 3


class _BuggySink:
    """A sink whose first writes raise what no target error is (a bug in a client library,
    say): no real server makes a client raise that, hence a stand-in."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[bytes] = []

    async def write(self, body: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("unforeseen")
        self.bodies.append(body)

    async def close(self) -> None:
        return None


async def test_a_writer_outlives_an_unforeseen_error_said_once_and_retries_its_batch(
        caplog: pytest.LogCaptureFixture) -> None:
    sink = _BuggySink(failures=3)
    with caplog.at_level(logging.WARNING, logger="edge.supervise"):
        async with BatchingWriter(sink, writers=1, flush_interval_s=0.05) as w:
            await w.put(b"m v=1 1\n", 1)
            done: list[bool] = []
            w.mark(lambda: done.append(True))
            await w.flush()
            await w.put(b"m v=2 2\n", 1)
            await w.flush()
            h = w.loops.by_name["influx-writer-0"]
    assert done == [True] and sink.bodies == [b"m v=1 1\n", b"m v=2 2\n"]
    assert (h.failures, h.streak, h.last_error) == (3, 0, "RuntimeError: unforeseen")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and "influx-writer-0: failed" in said[0] \
        and "working again after 3" in said[1]
