"""The last readings of the few points someone is looking at (the console's trend).

InfluxDB answers a trend where it is configured; elsewhere (the demo's file target, a point
without windowed rules, whose samples the engine does not keep) the console still needs the
point's recent values, live. Keeping them for every point would cost hundreds of MB at
100 000 points, so only points asked for in the last ``WATCH_S`` are kept, at most
``MAX_WATCHED`` of them: a step without any watched point pays one length check.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from alerting.batch import ReadingBatch

MAX_WATCHED = 32
WATCH_S = 600.0
KEEP = 2048          # samples per watched point (34 min at one a second)


class Tail:
    """Recent good samples of watched points (a point is watched once asked for)."""

    def __init__(self, max_watched: int = MAX_WATCHED, keep: int = KEEP) -> None:
        self._max = max_watched
        self._keep = keep
        self._asked: dict[int, float] = {}                 # position → last asked (mono s)
        self._samples: dict[int, deque[tuple[int, float]]] = {}
        self._positions = np.zeros(0, np.int32)

    def samples(self, position: int, now_s: float) -> list[tuple[int, float]]:
        """The point's kept samples (oldest first); watches it from now on."""
        for p, t in list(self._asked.items()):      # forget what nobody looked at lately
            if now_s - t > WATCH_S:
                del self._asked[p], self._samples[p]
        if position not in self._asked and len(self._asked) >= self._max:
            oldest = min(self._asked, key=self._asked.__getitem__)
            del self._asked[oldest], self._samples[oldest]
        self._asked[position] = now_s
        kept = self._samples.setdefault(position, deque(maxlen=self._keep))
        self._positions = np.fromiter(self._asked, np.int32, len(self._asked))
        return list(kept)

    def feed(self, batch: ReadingBatch) -> None:
        """Keep the batch's good, finite readings of watched points."""
        if len(self._positions) == 0 or len(batch) == 0:
            return
        hit = np.isin(batch.point, self._positions) & (batch.quality == 0) \
            & np.isfinite(batch.value)
        if not hit.any():
            return
        at = np.flatnonzero(hit)
        order = at[np.argsort(batch.ts_ms[at], kind="stable")]
        # a Python loop over the watched points' readings only (a few per step)
        for p, ts, v in zip(batch.point[order].tolist(), batch.ts_ms[order].tolist(),
                            batch.value[order].tolist(), strict=True):
            self._samples[p].append((ts, v))
