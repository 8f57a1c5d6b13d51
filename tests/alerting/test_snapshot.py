"""The engine's state captured and restored: the same config gives the same engine; a
changed config keeps the state of the points that are still there."""

from __future__ import annotations

import numpy as np
import pytest

from alerting.batch import ReadingBatch
from alerting.engine import Engine
from alerting.lifecycle import AlarmState
from alerting.snapshot import SnapshotError, capture, restore
from alerting.table import compile_rules
from gateway.sim.ports import free_port
from tests.gateway.test_e2e import small_site

T0 = 1_800_000_000_000


def engine(drop: str | None = None) -> Engine:
    ent = small_site(free_port()).enterprise
    if drop is not None:
        ent = ent.model_copy(deep=True)
        for hs in ent.hazard_sources.values():
            for eq in hs.equipment.values():
                eq.points.pop(drop, None)
    return Engine(compile_rules(ent))


def feed(e: Engine, ts: int, **values: float) -> list[str]:
    pos = [e.table.position[p] for p in values]
    batch = ReadingBatch(np.array(pos, np.int32), np.full(len(pos), ts, np.int64),
                         np.array(list(values.values())), np.zeros(len(pos), np.uint8))
    return [f"{ev.alarm_id} {ev.event}" for ev in e.process(batch)]


def test_a_restored_engine_goes_on_where_the_first_left_off() -> None:
    a = engine()
    assert "G1:process activate" in feed(a, T0, G1=62.0, L1=11.0)
    a.acknowledge("L1:process", "op", T0 + 1000)
    a.shelve("G1:process", "op", "maintenance", T0 + 3_600_000, T0 + 1000)
    b = engine()
    assert restore(b, capture(a)) == 3
    assert feed(b, T0 + 2000, G1=63.0, L1=11.5) == feed(a, T0 + 2000, G1=63.0, L1=11.5) == []
    assert b.lifecycle.state[b.slot("L1:process")] == AlarmState.ACK
    assert b.lifecycle.state[b.slot("G1:process")] == AlarmState.SHELVED
    assert b.lifecycle.shelved_until == a.lifecycle.shelved_until
    assert feed(b, T0 + 3000, L1=5.0) == ["L1:process clear"]         # said once


def test_a_changed_config_keeps_the_points_still_there() -> None:
    a = engine()
    feed(a, T0, G1=62.0, L1=11.0)
    b = engine(drop="P1")                      # P1 removed: the other slots move
    assert restore(b, capture(a)) == 2
    assert b.lifecycle.state[b.slot("G1:process")] == AlarmState.UNACK
    assert b.lifecycle.state[b.slot("L1:process")] == AlarmState.UNACK
    assert feed(b, T0 + 1000, G1=62.0) == []


def test_another_version_is_refused() -> None:
    snap = capture(engine())
    snap["version"] = 99
    with pytest.raises(SnapshotError, match="version 99"):
        restore(engine(), snap)


def test_a_version_1_snapshot_is_read_with_its_levels_derived() -> None:
    """Before multi-level acknowledgement the snapshot had no peak or acknowledged level: an
    upgrade keeps the alarm state, each alarm standing at its level (acknowledged at it when
    acknowledged), so the acknowledgement still holds."""
    a = engine()
    feed(a, T0, G1=62.0, L1=11.0)
    a.acknowledge("L1:process", "op", T0 + 1000)
    snap = capture(a)
    snap["version"] = 1
    del snap["life.peak"], snap["life.acked"]
    b = engine()
    assert restore(b, snap) == 3
    l1 = b.slot("L1:process")
    assert (b.lifecycle.peak[l1], b.lifecycle.acked[l1]) == (a.lifecycle.peak[l1],
                                                             a.lifecycle.acked[l1])
    assert feed(b, T0 + 2000, L1=11.0) == feed(a, T0 + 2000, L1=11.0)
