"""Compiled threshold rules and their vectorised evaluation.

Each point has four optional limits (lolo < lo < hi < hihi) and a reset deadband. Every limit
is a hysteresis switch: it sets when the value reaches the limit and resets only once the value
is back beyond ``limit ∓ deadband``; between the two it holds its previous state. The alarm
level of a reading (-2 LL, -1 L, 0 normal, 1 H, 2 HH) follows from the four switches, and an
event is emitted only where a point's level differs from its previous reading's level.

The hold is a sequential dependency, solved without a Python loop: readings are sorted by
(point, time), each switch yields set / reset / hold per reading, and a grouped forward fill
(``np.maximum.accumulate`` over positions) carries the last decision through the holds, seeded
from the level each point ended the previous batch with. Thus a series gives the same events
whether it arrives in one batch or one reading at a time.

Readings of bad or stale quality, or without a finite value, are not evaluated here: they
neither raise nor clear a process alarm (sensor faults are their own alarm kind).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerting.batch import Quality, ReadingBatch

LEVEL_NAMES = {-2: "LL", -1: "L", 0: "normal", 1: "H", 2: "HH"}

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


class PointTable:
    """Point ids and their limits as arrays, indexed by the position of a point in config."""

    def __init__(self, ids: npt.NDArray[np.str_], lolo: F64, lo: F64, hi: F64, hihi: F64,
                 deadband: F64) -> None:
        self.ids, self.lolo, self.lo, self.hi, self.hihi = ids, lolo, lo, hi, hihi
        self.deadband = deadband
        order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[order]
        self._order = order.astype(np.int32)

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def build(ids: list[str], limits: list[tuple[float | None, float | None, float | None,
                                                 float | None]],
              deadbands: list[float]) -> PointTable:
        """Compile per-point limits (None = not set) into columns."""
        arr = np.array([[np.nan if x is None else x for x in lim] for lim in limits],
                       dtype=np.float64).reshape(len(ids), 4)
        return PointTable(np.array(ids, dtype=np.str_), arr[:, 0].copy(), arr[:, 1].copy(),
                          arr[:, 2].copy(), arr[:, 3].copy(), np.asarray(deadbands, np.float64))

    def index(self, ids: npt.NDArray[np.str_]) -> npt.NDArray[np.int32]:
        """Positions of ``ids`` in the table, -1 for ids it does not know (vectorised)."""
        if len(self._sorted_ids) == 0:
            return np.full(len(ids), -1, np.int32)
        pos = np.minimum(np.searchsorted(self._sorted_ids, ids), len(self._sorted_ids) - 1)
        found = self._sorted_ids[pos] == ids
        return np.where(found, self._order[pos], -1).astype(np.int32)


@dataclass(frozen=True, slots=True)
class AlarmEvents:
    """Level changes as columns: one row per transition, in (point, time) order."""

    point: npt.NDArray[np.int32]
    ts_ms: npt.NDArray[np.int64]
    prev_level: I8
    level: I8
    value: F64
    limit: F64

    def __len__(self) -> int:
        return len(self.point)


def new_state(n_points: int) -> I8:
    """Every point starts at normal."""
    return np.zeros(n_points, np.int8)


def _switch(set_mask: npt.NDArray[np.bool_], reset_mask: npt.NDArray[np.bool_],
            init: npt.NDArray[np.bool_], group_start: npt.NDArray[np.intp],
            point: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    """Hysteresis state after each reading: set, reset, or hold the previous state."""
    n = len(set_mask)
    decided = set_mask | reset_mask
    pos = np.where(decided, np.arange(n), -1)
    last = np.maximum.accumulate(pos) if n else pos
    # A decision from an earlier point's group must not leak into this group.
    from_batch = last >= group_start
    return np.where(from_batch, set_mask[np.maximum(last, 0)], init[point])


def evaluate(table: PointTable, state: I8, batch: ReadingBatch) -> tuple[AlarmEvents, I8]:
    """Alarm level transitions of ``batch`` given each point's level before it; new levels."""
    ok = ((batch.quality <= Quality.UNCERTAIN) & np.isfinite(batch.value) & (batch.point >= 0))
    valid = np.flatnonzero(ok)
    order = valid[np.lexsort((batch.ts_ms[valid], batch.point[valid]))]
    point = batch.point[order]
    v = batch.value[order]
    n = len(order)
    out_state = state.copy()
    if n == 0:
        empty = np.empty(0)
        return AlarmEvents(point, batch.ts_ms[order], empty.astype(np.int8),
                           empty.astype(np.int8), empty, empty), out_state

    first = np.ones(n, bool)
    first[1:] = point[1:] != point[:-1]
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    db = table.deadband[point]
    prior = state

    with np.errstate(invalid="ignore"):
        hh_l, h_l = table.hihi[point], table.hi[point]
        l_l, ll_l = table.lo[point], table.lolo[point]
        # NaN limits compare False on both sides, so an unset limit never sets; reset it
        # explicitly so a removed limit clears.
        hh = _switch(v >= hh_l, (v < hh_l - db) | np.isnan(hh_l), prior >= 2, group_start, point)
        h = _switch(v >= h_l, (v < h_l - db) | np.isnan(h_l), prior >= 1, group_start, point)
        ll = _switch(v <= ll_l, (v > ll_l + db) | np.isnan(ll_l), prior <= -2, group_start, point)
        low = _switch(v <= l_l, (v > l_l + db) | np.isnan(l_l), prior <= -1, group_start, point)

    level = np.select([hh, h, ll, low], [2, 1, -2, -1], 0).astype(np.int8)
    prev = np.empty(n, np.int8)
    prev[1:] = level[:-1]
    prev[first] = state[point[first]]

    changed = np.flatnonzero(level != prev)
    lv, pv = level[changed], prev[changed]
    # The limit of an event is the one the new level names; for a return to normal, the one left.
    shown = np.where(lv != 0, lv, pv)
    limits = np.stack([ll_l, l_l, np.full(n, np.nan), h_l, hh_l])
    limit = limits[shown.astype(np.intp) + 2, changed]

    last = np.ones(n, bool)
    last[:-1] = point[1:] != point[:-1]
    out_state[point[last]] = level[last]
    events = AlarmEvents(point[changed], batch.ts_ms[order][changed], pv, lv, v[changed], limit)
    return events, out_state
