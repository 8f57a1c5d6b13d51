"""The contiguous-run fast path (per-point arrays read and written as slices when a batch holds
each point of one run once) gives exactly what the gathering path gives: the same events and
the same state, on a plant with every rule kind and readings that move through the limits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alerting import conditions, grouping
from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent, Engine
from alerting.state import RuleState
from tests.alerting.helpers import engine

N = 60
RULES = {"kind": "level", "unit": "m", "range_low": 0, "range_high": 10, "lolo": 0.5, "lo": 1,
         "hi": 8, "hihi": 9, "stale_after_s": 5, "tamper": {}, "on_delay_s": 3,
         "off_delay_s": 2,
         "roc": {"rise_per_min": 30, "fall_per_min": 30, "window_s": 5},
         "trend": {"horizon_s": 60, "window_s": 10},
         "flatline": {"suspect_s": 8, "fail_s": 20, "tolerance": 0.0001}}


def run(fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[AlarmEvent], RuleState]:
    if not fast:
        real = grouping.group

        def no_span(*a: object) -> grouping.Groups:
            return dataclasses.replace(real(*a), span=None)   # type: ignore[arg-type]
        monkeypatch.setattr(conditions, "group", no_span)
    e: Engine = engine({f"L{i}": RULES for i in range(N)})
    rng = np.random.default_rng(11)
    base = rng.uniform(2, 7, N)
    out: list[AlarmEvent] = []
    for c in range(60):
        # ramps through the limits, a stuck group, drops to zero, gaps (stale), bad quality
        v = base + 0.12 * c * (np.arange(N) % 3 == 0) + rng.normal(0, 0.05, N)
        v[N // 2:N // 2 + 5] = 4.0
        if c % 17 == 5:
            v[7] = 0.0
        present = np.ones(N, bool)
        if 20 <= c < 30:
            present[40:] = False           # the last points go silent for 10 s
        q = np.where(rng.random(N) < 0.02, 2, 0).astype(np.uint8)
        idx = np.flatnonzero(present).astype(np.int32)
        out += e.process(ReadingBatch(idx, np.full(len(idx), 1_000_000 + c * 1000, np.int64),
                                      v[idx], q[idx]))
        out += e.tick(1_000_000 + c * 1000 + 500)
    monkeypatch.undo()
    return out, e.state


def test_slices_and_gathers_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_events, fast_state = run(True, monkeypatch)
    slow_events, slow_state = run(False, monkeypatch)
    assert len(fast_events) > 50          # the plant does move: many alarms of many kinds
    assert {e.alarm_type for e in fast_events} >= {"process", "roc", "predictive", "fault",
                                                   "stale", "flatline", "tamper"}
    assert fast_events == slow_events
    for f in dataclasses.fields(RuleState):
        a, b = getattr(fast_state, f.name), getattr(slow_state, f.name)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b, equal_nan=True), f.name
        else:
            assert a == b, f.name
