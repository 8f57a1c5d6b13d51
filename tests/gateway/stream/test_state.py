"""The state file: written atomically and read back whole; a damaged or foreign one is said
once and ignored (the core starts fresh), never the end of the gateway."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from alerting.engine import Engine
from alerting.snapshot import capture
from alerting.table import compile_rules
from gateway.sim.ports import free_port
from gateway.stream.state import load, save, state_path
from tests.gateway.test_e2e import small_site


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
