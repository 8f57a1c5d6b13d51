"""Small plants for rule tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent, Engine
from alerting.plant import Enterprise
from alerting.table import compile_rules

PERSONS = {r: {"name": r, "phone": "+86 138 0000 0000"} for r in ("main", "technical",
                                                                  "operational")}


def enterprise(points: dict[str, dict[str, Any]], votes: dict[str, Any] | None = None,
               ) -> Enterprise:
    """One hazard source, one equipment holding ``points``."""
    return Enterprise.model_validate({
        "code": "91320582MA1W3K4X5R", "name": "test",
        "hazard_sources": {"src": {
            "name": "src", "unit_type": "storage", "exposed_population_500m": 0,
            "responsible_persons": PERSONS,
            "equipment": {"eq": {"kind": "area", "points": points, "votes": votes or {}}}}}})


def engine(points: dict[str, dict[str, Any]], votes: dict[str, Any] | None = None,
           interval_s: float = 1.0) -> Engine:
    """An engine over ``points`` polled every ``interval_s``."""
    ent = enterprise(points, votes)
    return Engine(compile_rules(ent, {p: interval_s for p in points}))


def feed(e: Engine, rows: Sequence[tuple[Any, ...]], single: bool = False,
         ) -> list[AlarmEvent]:
    """Feed (ts_ms, point, value[, quality]) rows in one batch or one at a time."""
    idx = e.table.index(np.array([r[1] for r in rows]))
    ts = np.array([r[0] for r in rows], np.int64)
    val = np.array([r[2] for r in rows], np.float64)
    q = np.array([r[3] if len(r) > 3 else 0 for r in rows], np.uint8)
    if not single:
        return e.process(ReadingBatch(idx, ts, val, q))
    out: list[AlarmEvent] = []
    for i in range(len(rows)):
        out += e.process(ReadingBatch(idx[i:i + 1], ts[i:i + 1], val[i:i + 1], q[i:i + 1]))
    return out


def timeline(events: list[AlarmEvent]) -> list[tuple[int, str, str, str]]:
    """(ts, alarm id, event, level name) in time order."""
    return sorted((e.ts, e.alarm_id, e.event, e.level_name) for e in events)


LEVEL = {"kind": "level", "unit": "m", "range_low": 0, "range_high": 10, "hi": 8, "hihi": 9,
         "lo": 1, "stale_after_s": 1000}
GAS = {"kind": "combustible_gas", "unit": "%LEL", "range_low": 0, "range_high": 100,
       "hi": 25, "hihi": 50, "stale_after_s": 1000}


def random_series(seed: int, points: int, readings: int) -> list[tuple[int, str, float, int]]:
    """A random walk per point P0..P{points-1} with some gaps (stale), drops to zero (tamper),
    flat runs (flatline) and bad readings (fault), in time order."""
    from alerting.batch import Quality
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, str, float, int]] = []
    for i in range(points):
        t, v = 0, 5.0
        for _ in range(readings):
            t += int(rng.choice([1000, 1000, 1000, 7000]))          # some gaps: stale
            r = rng.random()
            v = 0.0 if r < 0.01 else v if r < 0.2 else float(np.clip(v + rng.normal(0, 0.6),
                                                                      0, 10))
            q = Quality.BAD if rng.random() < 0.02 else Quality.GOOD
            rows.append((t, f"P{i}", v, int(q)))
    rows.sort(key=lambda r: r[0])
    return rows


def batch_and_single(points: dict[str, dict[str, Any]], rows: Sequence[tuple[Any, ...]],
                     ) -> tuple[list[tuple[int, str, str, str]], list[tuple[int, str, str, str]]]:
    """The timeline of ``rows`` fed in one batch and one reading at a time, floods left out:
    a stale alarm is stamped when the gap began, so the order in which annunciations reach
    the flood window depends on how the series was cut into batches."""
    whole = [x for x in timeline(feed(engine(points), rows)) if ":flood" not in x[1]]
    single = [x for x in timeline(feed(engine(points), rows, single=True))
              if ":flood" not in x[1]]
    return whole, single
