"""The state file: written atomically and read back whole; a damaged or foreign one is said
once and ignored (the core starts fresh), never the end of the gateway."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from alerting.batch import ReadingBatch
from alerting.engine import Engine
from alerting.snapshot import capture, restore
from alerting.table import compile_rules
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.sim.ports import free_port
from gateway.site import load_site
from gateway.stream.compiled import as_compiled
from gateway.stream.core import Core
from gateway.stream.ingest import MessageBuffer
from gateway.stream.runtime import Acknowledgements, consume
from gateway.stream.state import StateKeeper, load, save, state_path
from tests.gateway.stream.test_runtime import message
from tests.gateway.test_e2e import small_site
from tests.waiting import wait_until


def engine() -> Engine:
    return Engine(compile_rules(small_site(free_port()).enterprise))


def test_saved_state_comes_back_whole(tmp_path: Path) -> None:
    path = state_path(tmp_path, "E", "core/1")
    assert path.name == "E-core_1.npz"
    save(path, capture(engine()), {"edge-t": {"1": [5, [[1, 2]], 0]}}, 42)
    loaded = load(path)
    assert loaded is not None
    snap, sequences, saved, position = loaded
    assert saved == 42 and sequences == {"edge-t": {"1": [5, [[1, 2]], 0]}}
    assert position is None
    save(path, capture(engine()), {}, 43, position=1234)     # the JetStream transport's
    again = load(path)
    assert again is not None and again[3] == 1234
    assert list(snap["points"]) == list(engine().table.names)
    assert not list(tmp_path.glob("*.tmp"))


def test_a_device_off_line_survives_the_file(tmp_path: Path, demo_config_path: Path) -> None:
    """Seen before: snapshots held devices but the file did not (KeyError at restore)."""
    site = as_compiled(load_site(demo_config_path))
    a = Engine(site.table)
    pts = ["T201_level", "T201_press"]
    [ev] = [e for e in a.process(ReadingBatch(a.table.index(pts), np.full(2, 1000, np.int64),
                                              np.full(2, np.nan), np.full(2, 3, np.uint8)))
            if e.alarm_type == "device"]
    path = tmp_path / "E-core.npz"
    save(path, capture(a), {}, 1)
    loaded = load(path)
    assert loaded is not None
    b = Engine(site.table)
    restore(b, loaded[0])
    assert [(x.alarm_id, x.state) for x in b.standing()] == [(ev.alarm_id, "unack")]
    # back on line once every point it delivers has answered
    back = b.process(ReadingBatch(b.table.index(pts), np.full(2, 2000, np.int64),
                                  np.full(2, 1.0), np.zeros(2, np.uint8)))
    assert [(x.alarm_id, x.event) for x in back if x.annunciated] == [(ev.alarm_id, "clear")]


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04garbage"])
def test_a_damaged_file_is_said_and_ignored(tmp_path: Path, content: bytes,
                                           caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "E-core.npz"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="gateway.stream.state"):
        assert load(path) is None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].endswith("starting without it")
    assert load(tmp_path / "absent.npz") is None


async def test_messages_are_acknowledged_only_once_a_saved_state_covers_them(
        tmp_path: Path, demo_config_path: Path) -> None:
    """With a state file, what was processed and written waits for the next save to be
    acknowledged; after it, a restarted core takes those messages as duplicates (had they
    come again) and evaluates the others."""
    acked: list[int] = []
    path = tmp_path / "E-core.npz"
    async with BatchingWriter(NullSink()) as writer:
        core = Core(load_site(demo_config_path), writer)
        buffer = MessageBuffer(asyncio.get_running_loop(), acker=acked.extend)
        acks = Acknowledgements(buffer, writer, gated=True)
        keeper = StateKeeper(path, core, acks)
        stop = asyncio.Event()
        task = asyncio.create_task(consume(core, buffer, stop, 0.0, acks))
        for seq in range(3):
            buffer.push(message(seq), token=100 + seq)
        await wait_until(lambda: core.stats.readings == 3)
        await writer.flush()
        assert acked == [] and acks.waiting == [100, 101, 102]      # durable, not yet saved
        await keeper.save()
        assert acked == [100, 101, 102] and path.exists()
        await keeper.save()                                # nothing new: nothing written
        assert keeper.saves == 1
        stop.set()
        await task
    async with BatchingWriter(NullSink()) as writer:
        again = Core(load_site(demo_config_path), writer)
        assert await StateKeeper(path, again).restore()
        await again.handle([message(2), message(3)])
        assert (again.stats.duplicate_messages, again.stats.readings) == (1, 1)
