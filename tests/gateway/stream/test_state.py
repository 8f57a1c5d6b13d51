"""The state file: written atomically and read back whole; a damaged or foreign one is said
once and ignored (the core starts fresh), never the end of the gateway."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from alerting.engine import Engine
from alerting.snapshot import capture
from alerting.table import compile_rules
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.sim.ports import free_port
from gateway.site import load_site
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
    snap, sequences, saved = loaded
    assert saved == 42 and sequences == {"edge-t": {"1": [5, [[1, 2]], 0]}}
    assert list(snap["points"]) == list(engine().table.names)
    assert not list(tmp_path.glob("*.tmp"))


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
