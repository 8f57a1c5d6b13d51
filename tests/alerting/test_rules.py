from __future__ import annotations

import numpy as np
import pytest

from alerting.batch import Quality, ReadingBatch
from alerting.rules import AlarmEvents, PointTable, evaluate, new_state


def table() -> PointTable:
    # point 0: full four limits, deadband 1; point 1: hi only, deadband 0.5
    return PointTable.build(["T1", "P1"], [(5, 10, 80, 90), (None, None, 50, None)], [1.0, 0.5])


def batch(points: list[int], values: list[float], ts: list[int] | None = None,
          quality: list[int] | None = None) -> ReadingBatch:
    n = len(points)
    return ReadingBatch(
        np.asarray(points, np.int32),
        np.asarray(ts if ts is not None else range(n), np.int64),
        np.asarray(values, np.float64),
        np.asarray(quality if quality is not None else [0] * n, np.uint8))


def transitions(ev: AlarmEvents) -> list[tuple[int, int, int, int]]:
    return list(zip(ev.point.tolist(), ev.ts_ms.tolist(), ev.prev_level.tolist(),
                    ev.level.tolist(), strict=True))


def test_ramp_through_every_high_limit_and_back() -> None:
    t = table()
    values = [50, 79, 80, 85, 90, 95, 89.5, 88, 79.5, 78.9, 50]
    ev, state = evaluate(t, new_state(2), batch([0] * len(values), values))
    # H at 80, HH at 90; HH holds at 89.5 (deadband 1) and drops to H at 88; H holds at 79.5
    # and clears below 79.
    assert transitions(ev) == [(0, 2, 0, 1), (0, 4, 1, 2), (0, 7, 2, 1), (0, 9, 1, 0)]
    # The limit of the level entered; for a return to normal, of the level left.
    assert ev.limit.tolist() == [80, 90, 80, 80]
    assert state.tolist() == [0, 0]


def test_low_limits_mirror_high_ones() -> None:
    ev, state = evaluate(table(), new_state(2), batch([0] * 6, [50, 10, 4, 5.5, 6.5, 11.5]))
    assert transitions(ev) == [(0, 1, 0, -1), (0, 2, -1, -2), (0, 4, -2, -1), (0, 5, -1, 0)]
    assert state[0] == 0


def test_oscillation_inside_the_deadband_raises_once() -> None:
    values = [49, 50.2, 49.8, 50.1, 49.6, 50.3, 49.4]
    ev, _ = evaluate(table(), new_state(2), batch([1] * len(values), values))
    assert transitions(ev) == [(1, 1, 0, 1), (1, 6, 1, 0)]


def test_state_carries_across_batches() -> None:
    t = table()
    ev1, s1 = evaluate(t, new_state(2), batch([1], [60]))
    ev2, s2 = evaluate(t, s1, batch([1], [55], ts=[1]))
    ev3, _ = evaluate(t, s2, batch([1], [40], ts=[2]))
    assert (len(ev1), len(ev2), len(ev3)) == (1, 0, 1)
    assert ev3.level.tolist() == [0]


def test_bad_quality_and_missing_values_neither_raise_nor_clear() -> None:
    t = table()
    _, s = evaluate(t, new_state(2), batch([1], [60]))
    ev, s2 = evaluate(t, s, batch([1, 1, 1], [10, np.nan, 10], ts=[1, 2, 3],
                                  quality=[Quality.BAD, Quality.GOOD, Quality.STALE]))
    assert len(ev) == 0 and s2[1] == 1


def test_unknown_points_are_ignored() -> None:
    ev, _ = evaluate(table(), new_state(2), batch([-1, 1], [1000, 60]))
    assert transitions(ev) == [(1, 1, 0, 1)]


def test_readings_are_ordered_by_time_within_a_batch() -> None:
    ev, s = evaluate(table(), new_state(2), batch([1, 1], [40, 60], ts=[20, 10]))
    assert transitions(ev) == [(1, 10, 0, 1), (1, 20, 1, 0)]
    assert s[1] == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_batch_equals_one_reading_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_points, n = 20, 3000
    limits: list[tuple[float | None, float | None, float | None, float | None]] = \
        [(10.0, 20.0, 80.0, 90.0)] * 10 + [(None, None, 50.0, 70.0)] * 10
    t = PointTable.build([f"p{i}" for i in range(n_points)], limits,
                         list(rng.uniform(0, 5, n_points)))
    pts = rng.integers(0, n_points, n).astype(np.int32)
    ts = np.arange(n, dtype=np.int64)
    # a random walk per point that crosses the limits often
    vals = 50 + np.cumsum(rng.normal(0, 8, n))
    vals = np.clip(vals, 0, 100)
    q = np.where(rng.random(n) < 0.05, Quality.BAD, Quality.GOOD).astype(np.uint8)
    whole, s_whole = evaluate(t, new_state(n_points), ReadingBatch(pts, ts, vals, q))
    state = new_state(n_points)
    single: list[tuple[int, int, int, int]] = []
    for i in range(n):
        ev, state = evaluate(t, state, ReadingBatch(pts[i:i + 1], ts[i:i + 1], vals[i:i + 1],
                                                    q[i:i + 1]))
        single += transitions(ev)
    assert len(whole) > 100  # the walk really does cross limits
    assert sorted(transitions(whole)) == sorted(single)
    assert s_whole.tolist() == state.tolist()


def test_point_index_lookup_is_vectorised_and_marks_unknown() -> None:
    t = PointTable.build(["b", "a", "c"], [(None,) * 4] * 3, [0, 0, 0])
    idx = t.index(np.array(["a", "zz", "c", "b", "a"]))
    assert idx.tolist() == [1, -1, 2, 0, 1]
