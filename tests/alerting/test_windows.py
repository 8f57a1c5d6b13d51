"""Windows as long as configured: the sample ring is sized from the windows within a memory
budget (``alerting.table.ring_capacity``), so a 60 s rate window at a 1 s poll measures over
60 s (it measured over 15 s), with batch/single invariance; a snapshot moves into a ring of
another size with its samples and trend sums."""

from __future__ import annotations

import numpy as np
import pytest

from alerting.snapshot import capture, restore
from alerting.table import K_LIMIT, K_MAX, RING_BUDGET_BYTES, ring_capacity
from tests.alerting.helpers import LEVEL, batch_and_single, engine, feed, random_series, timeline


def test_ring_capacity_follows_the_windows_within_the_budget() -> None:
    assert ring_capacity(16, 0) == K_MAX                     # no windows: the minimum
    assert ring_capacity(16, 121) == 128                     # a 120 s window at 1 s
    assert ring_capacity(16, 5000) == K_LIMIT                # capped
    assert ring_capacity(100_000, 121) == K_MAX              # the budget at 100 000 points
    assert ring_capacity(10_000, 5000) == 128
    for n in (1, 1000, 10_000, 100_000, 1_000_000):          # never over the budget
        assert ring_capacity(n, 10**6) * 16 * n <= max(RING_BUDGET_BYTES, K_MAX * 16 * n)


def test_a_sixty_second_rate_window_measures_over_sixty_seconds() -> None:
    """0.5 m in 2 s, then flat: over 60 s that is 0.5 m/min, under the 1 m/min limit; over
    the 15 s the ring used to hold it read 2 m/min and alarmed."""
    e = engine({"P": {**LEVEL, "roc": {"rise_per_min": 1.0, "window_s": 60}}})
    assert e.table.roc_k[0] == 60 and e.table.k_max == 64
    rows = [(i * 1000, "P", 2.0) for i in range(70)]
    rows += [(70_000, "P", 2.25), (71_000, "P", 2.5)]
    rows += [(72_000 + i * 1000, "P", 2.5) for i in range(60)]
    assert [x for x in feed(e, rows) if x.alarm_type == "roc"] == []
    # and a real rise (1.2 m/min from 70 s) alarms once the minute behind it holds 1.0 m
    e2 = engine({"P": {**LEVEL, "roc": {"rise_per_min": 1.0, "window_s": 60}}})
    ramp = [(i * 1000, "P", 2.0 + 0.02 * max(0, i - 70)) for i in range(140)]
    [act] = [x for x in feed(e2, ramp) if x.alarm_type == "roc" and x.event == "activate"]
    assert act.ts == 120_000          # (3.0 − 2.0) m over the 60 s from 60 s: 1.0 m/min


LONG = {**LEVEL, "lolo": 0.5, "on_delay_s": 3, "off_delay_s": 2, "stale_after_s": 5,
        "roc": {"rise_per_min": 4, "fall_per_min": 4, "window_s": 40},
        "trend": {"horizon_s": 60, "window_s": 50},
        "flatline": {"suspect_s": 4, "fail_s": 8, "tolerance": 0.001}, "tamper": {}}


@pytest.mark.parametrize("seed", [5, 6])
def test_long_windows_give_one_timeline_in_one_batch_or_reading_by_reading(seed: int) -> None:
    points = {f"P{i}": LONG for i in range(4)}
    rows = random_series(seed, 4, 400)
    assert engine(points).table.k_max == 64
    whole, single = batch_and_single(points, rows)
    assert {a.split(":")[1] for _, a, _, _ in whole} >= {"roc", "predictive"}
    assert whole == single


def test_a_snapshot_moves_into_a_ring_of_another_size() -> None:
    """The new config's longer window makes a larger ring: the newest samples move over, the
    trend sums are fitted again over them, and what follows is what an engine given only
    those samples does."""
    short = {**LEVEL, "trend": {"horizon_s": 60, "window_s": 10}}
    longer = {**LEVEL, "trend": {"horizon_s": 60, "window_s": 40}}
    a = engine({"T": short})
    assert a.table.k_max == K_MAX
    history = [(i * 1000, "T", 3.0 + 0.01 * i) for i in range(30)]
    feed(a, history)
    b = engine({"T": longer})
    assert b.table.k_max == 64
    restore(b, capture(a))
    kept = a.recent("T")
    assert b.recent("T") == kept and len(kept) == K_MAX
    # an engine that saw only the kept samples, with the new config
    c = engine({"T": longer})
    feed(c, [(t, "T", v) for t, v in kept])
    c.state.tr_epoch = b.state.tr_epoch
    from alerting.snapshot import _refit
    _refit(c, np.array([0]))
    np.testing.assert_allclose(b.state.tr[0], c.state.tr[0])
    ramp = [(30_000 + i * 1000, "T", 3.3 + 0.05 * i) for i in range(60)]
    assert timeline(feed(b, ramp)) == timeline(feed(c, ramp))
