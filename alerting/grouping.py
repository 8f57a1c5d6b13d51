"""Readings grouped by point in time order, and the scans the rules build on.

Rules are sequential per point (hysteresis, delays, windows) but must not loop in Python per
reading. Sorting by (point, time) makes each point's readings contiguous; a decision carried
through a run of "hold" readings is then a forward fill (``np.maximum.accumulate`` over
positions) that must not cross into the previous point's group, where the carried state of
the previous batch takes over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

IDX = npt.NDArray[np.intp]
T = TypeVar("T", bound=np.generic)
BOOL = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Groups:
    """Positions (into the batch) of some readings, sorted by (point, ts), with group marks."""

    order: IDX
    point: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    first: BOOL
    last: BOOL
    start: IDX
    rank: IDX
    singletons: bool   # every point at most once: the common poll batch, and a fast path
    # singletons whose points are one contiguous run (a whole-site or whole-device poll
    # cycle): per-point arrays are then read and written as slices, not gathered
    span: slice | None = None

    def __len__(self) -> int:
        return len(self.order)

    def of(self, per_point: npt.NDArray[T]) -> npt.NDArray[T]:
        """``per_point[point]`` for each reading: a view when the points are a contiguous run
        (do not write through it), else a gathered copy."""
        return per_point[self.span] if self.span is not None else per_point[self.point]

    def carry(self, decided: BOOL) -> tuple[IDX, BOOL]:
        """For each reading, the position of the latest decided reading of its own group at
        or before it, and whether there is one (else the prior batch's state applies)."""
        n = len(decided)
        if self.singletons:
            return np.arange(n), decided
        pos = np.where(decided, np.arange(n), -1)
        last = np.maximum.accumulate(pos) if n else pos
        inside = last >= self.start
        return np.maximum(last, 0), inside

    def subset(self, keep: BOOL) -> Groups:
        """The readings where ``keep`` is set; ``keep`` must select whole groups."""
        if self.singletons:
            n = int(keep.sum())
            return Groups(self.order[keep], self.point[keep], self.ts[keep], self.first[keep],
                          self.last[keep], np.arange(n), np.zeros(n, np.intp), True)
        first, rank = self.first[keep], self.rank[keep]
        n = len(first)
        start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else rank
        return Groups(self.order[keep], self.point[keep], self.ts[keep], first,
                      self.last[keep], start, rank, False)

    def whole_groups(self, any_of: BOOL, n_points: int) -> BOOL:
        """Readings of every point that has at least one reading in ``any_of``."""
        if self.singletons:
            return any_of
        hit = np.zeros(n_points, bool)
        hit[self.point[any_of]] = True
        return hit[self.point]

    def store(self, target: npt.NDArray[T], values: npt.NDArray[T] | int) -> None:
        """``target[point] =`` each group's last value (a scalar: the same for all)."""
        if self.span is not None:
            target[self.span] = values
        elif self.singletons:        # every reading is its group's last: no masking
            target[self.point] = values
        elif isinstance(values, int):
            target[self.point[self.last]] = values
        else:
            target[self.point[self.last]] = values[self.last]

    def previous(self, values: npt.NDArray[T], prior: npt.NDArray[T]) -> npt.NDArray[T]:
        """Each reading's predecessor in its group; ``prior[point]`` for a group's first."""
        if self.singletons:
            return self.of(prior).copy() if self.span is not None else prior[self.point]
        out = np.empty_like(values)
        if len(values):
            out[1:] = values[:-1]
            out[self.first] = prior[self.point[self.first]]
        return out


def group(point: npt.NDArray[np.int32], ts: npt.NDArray[np.int64], mask: BOOL) -> Groups:
    """Group the readings selected by ``mask``; stable for equal (point, ts)."""
    sel = np.flatnonzero(mask)
    p, t = point[sel], ts[sel]
    n = len(sel)
    # Poll batches list each point once or in point order: a stable sort by point alone is
    # then cheap (timsort finds the runs). Out-of-order times within a point need the full sort.
    order = np.argsort(p, kind="stable")
    p, t = p[order], t[order]
    same = p[1:] == p[:-1] if n else np.zeros(0, bool)
    if n > 1 and np.any(same & (t[1:] < t[:-1])):
        order = np.lexsort((ts[sel], point[sel]))
        p, t = point[sel][order], ts[sel][order]
        same = p[1:] == p[:-1]
    first = np.ones(n, bool)
    first[1:] = ~same
    last = np.ones(n, bool)
    last[:-1] = ~same
    singletons = not same.any()
    if singletons:
        start = np.arange(n)
        span = slice(int(p[0]), int(p[0]) + n) if n and int(p[-1]) - int(p[0]) == n - 1 \
            else None
        return Groups(sel[order], p, t, first, last, start, np.zeros(n, np.intp), True, span)
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, np.intp)
    return Groups(sel[order], p, t, first, last, start, np.arange(n) - start, False)


def switch(groups: Groups, set_mask: BOOL, reset_mask: BOOL, prior: BOOL) -> BOOL:
    """Hysteresis: set, reset, or hold the previous state (prior batch's for a group's first
    readings). ``prior`` is indexed by point."""
    if groups.singletons:
        return set_mask | (~reset_mask & groups.of(prior))
    at, inside = groups.carry(set_mask | reset_mask)
    return np.where(inside, set_mask[at], prior[groups.point])
