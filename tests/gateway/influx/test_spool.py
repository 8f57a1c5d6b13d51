from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.spool import Spool
from gateway.influx.targets import influx_v1
from gateway.influx.writer import BatchingWriter
from gateway.settings import InfluxSettings
from tests import services
from tests.services import influx_query


def test_batches_come_back_oldest_first_and_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(b"a 1\n", 1)
    spool.append(b"b 2\nb 3\n", 2)
    again = Spool(tmp_path, max_bytes=10_000)
    assert (len(again), again.points, again.bytes) == (2, 3, 12)
    first = again.oldest()
    assert first is not None and first[1] == b"a 1\n"
    again.remove(first[0])
    again.append(b"c 4\n", 1)
    assert [again.oldest()[1] for _ in range(1)] == [b"b 2\nb 3\n"]  # type: ignore[index]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000000000000000001-2.lp", "00000000000000000002-1.lp"]


def test_full_spool_drops_the_oldest_and_counts_the_points(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    for i in range(5):
        spool.append(b"x" * 40, 10 + i)
    assert spool.bytes <= 100
    assert spool.dropped_points == 10 + 11 + 12
    assert spool.points == 13 + 14


def test_a_full_spool_drops_readings_first_and_alarm_events_only_beyond_the_reserve(
        tmp_path: Path) -> None:
    """Seen before: 195 alarm events lost in a run with a small spool (oldest first)."""
    spool = Spool(tmp_path, max_bytes=400)
    spool.append(b"e" * 100, 1, keep=True)             # alarm events, oldest
    for i in range(4):
        spool.append(b"r" * 100, 10 + i)               # readings
    assert spool.bytes <= 400 and spool.dropped_points == 10
    kept = Spool(tmp_path, max_bytes=400)              # the flag survives a restart
    assert [b.keep for b in kept._batches] == [True, False, False, False]
    for _ in range(4):
        kept.append(b"e" * 100, 1, keep=True)          # only alarm events left to drop
    assert kept.dropped_alarm_batches >= 1 and kept.bytes <= 440    # the reserve, then loss
    assert all(b.keep for b in kept._batches)


def test_half_written_files_from_a_crash_are_discarded(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000007-5.tmp").write_bytes(b"partial")
    (tmp_path / "notes.lp").write_bytes(b"?")
    spool = Spool(tmp_path, max_bytes=1000)
    assert len(spool) == 0
    assert not (tmp_path / "00000000000000000007-5.tmp").exists()


LINE = "reading,point=p{i} value={i},quality=0i {ts}\n"


def body(start: int, n: int) -> bytes:
    return "".join(LINE.format(i=i, ts=1_700_000_000_000 + i) for i in range(start, start + n)
                   ).encode()


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[services.Server]:
    with services.influxdb(tmp_path / "influx") as server:
        services.influx_create_db(server, "spooltest")
        yield server


def count(server: services.Server) -> int:
    rows = influx_query(server, "spooltest", "SELECT count(value) FROM reading")
    return int(rows[0]["values"][0][1]) if rows else 0


async def test_outage_spools_to_disk_and_replays_in_the_same_run(
        influx: services.Server, tmp_path: Path) -> None:
    influx.stop()
    spool = Spool(tmp_path / "spool", 10_000_000)
    sink = influx_v1(InfluxSettings(url=influx.url, database="spooltest", timeout_s=1))
    async with BatchingWriter(sink, batch_points=1000, writers=2, max_backoff_s=0.2,
                              spool=spool, spool_after_s=0.3) as w:
        for k in range(3):
            await w.put(body(k * 1000, 1000), 1000)
        await w.flush()
        assert w.stats.spooled_points == 3000 and spool.points == 3000
        influx.start_again(services.INFLUX_READY)
        # new data arriving before the replay has reached the target queues behind it
        await w.put(body(3000, 500), 500)
        assert await w.drained(20)
    assert w.stats.replayed_points == w.stats.spooled_points >= 3000
    assert w.stats.points_written == 3500
    assert count(influx) == 3500


async def test_spool_left_at_shutdown_is_replayed_after_a_restart(
        influx: services.Server, tmp_path: Path) -> None:
    influx.stop()
    settings = InfluxSettings(url=influx.url, database="spooltest", timeout_s=1)
    spool_dir = tmp_path / "spool"
    async with BatchingWriter(influx_v1(settings), batch_points=1000, max_backoff_s=0.2,
                              close_timeout_s=0.5, spool=Spool(spool_dir, 10_000_000),
                              spool_after_s=5) as w:
        await w.put(body(0, 2500), 2500)
        await asyncio.sleep(0.3)  # the write is being retried when we stop
    assert w.stats.unwritten_points_at_close == 0
    assert Spool(spool_dir, 10_000_000).points == 2500
    influx.start_again(services.INFLUX_READY)
    async with BatchingWriter(influx_v1(settings), spool=Spool(spool_dir, 10_000_000)) as w2:
        assert await w2.drained(20)
    assert count(influx) == 2500 and w2.stats.replayed_points == 2500


async def test_a_stalled_database_spills_to_the_spool_instead_of_blocking(
        influx: services.Server, tmp_path: Path) -> None:
    import os
    import signal

    spool = Spool(tmp_path / "spool", 10_000_000)
    sink = influx_v1(InfluxSettings(url=influx.url, database="spooltest", timeout_s=30))
    os.kill(influx.proc.pid, signal.SIGSTOP)      # the real server, frozen mid-flight
    try:
        async with BatchingWriter(sink, batch_points=500, writers=1, max_pending_batches=2,
                                  spool=spool, spool_after_s=60) as w:
            # had put waited for queue space, this loop would hang on the frozen server
            for k in range(10):
                await w.put(body(k * 500, 500), 500)
            assert w.stats.spooled_points >= 3000      # queue of 2 + one in flight, rest spilt
            os.kill(influx.proc.pid, signal.SIGCONT)
            assert await w.drained(30)
    finally:
        os.kill(influx.proc.pid, signal.SIGCONT)
    assert count(influx) == 5000


async def test_a_hung_write_is_made_durable_in_time_and_not_written_twice(
        influx: services.Server, tmp_path: Path) -> None:
    """InfluxDB paused mid-write: within spool_after_s the batch has a copy in the spool and
    is marked durable (its messages may be acknowledged); the write goes on, lands when the
    server resumes, and the copy is dropped again. Seen before: a hung write held the
    batch for the whole HTTP timeout, unacknowledgeable and unspooled."""
    import os
    import signal

    spool = Spool(tmp_path / "spool", 10_000_000)
    sink = influx_v1(InfluxSettings(url=influx.url, database="spooltest", timeout_s=30))
    durable: list[float] = []
    async with BatchingWriter(sink, batch_points=500, writers=1, spool=spool,
                              spool_after_s=0.5) as w:
        os.kill(influx.proc.pid, signal.SIGSTOP)
        try:
            started = asyncio.get_running_loop().time()
            await w.put(body(0, 500), 500)
            w.mark(lambda: durable.append(asyncio.get_running_loop().time() - started))
            for _ in range(100):                      # bounded: 10 s
                if durable:
                    break
                await asyncio.sleep(0.1)
            assert durable and spool.points == 500 and w.stats.slow_writes == 1
        finally:
            os.kill(influx.proc.pid, signal.SIGCONT)
        assert await w.drained(30)
    assert spool.points == 0 and w.stats.spooled_points == 0 and w.stats.replayed_points == 0
    assert count(influx) == 500
