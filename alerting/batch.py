"""Columnar batches of readings: the unit of work of the whole hot path."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt


class Quality(IntEnum):
    """Quality of one sample; carried through the wire to InfluxDB and the rules."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2
    STALE = 3


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Readings as parallel numpy columns.

    ``point`` indexes the compiled rule table (``alerting.table.RuleTable``: one row per
    point, in config order), so the rules never touch a string; ``ts_ms`` is Unix time in
    milliseconds.
    """

    point: npt.NDArray[np.int32]
    ts_ms: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]

    def __post_init__(self) -> None:
        n = len(self.point)
        if not (len(self.ts_ms) == len(self.value) == len(self.quality) == n):
            raise ValueError("ReadingBatch columns must have equal lengths")

    def __len__(self) -> int:
        return len(self.point)

    @staticmethod
    def empty() -> ReadingBatch:
        """A batch with no readings."""
        return ReadingBatch(
            np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64),
            np.empty(0, np.uint8),
        )

    @staticmethod
    def concat(batches: list[ReadingBatch]) -> ReadingBatch:
        """Join batches column by column, keeping their order."""
        if not batches:
            return ReadingBatch.empty()
        if len(batches) == 1:
            return batches[0]
        return ReadingBatch(
            np.concatenate([b.point for b in batches]),
            np.concatenate([b.ts_ms for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
        )

    def take(self, idx: npt.NDArray[np.intp]) -> ReadingBatch:
        """The readings at ``idx``, in that order."""
        return ReadingBatch(self.point[idx], self.ts_ms[idx], self.value[idx], self.quality[idx])
