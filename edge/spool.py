"""A bounded on-disk spool of line-protocol batches, replayed oldest first.

One file per batch, named ``<sequence>-<points>.lp`` and written atomically (temporary name,
fsync, rename), so a crash leaves either the whole batch or nothing. When the spool would
exceed its byte limit the oldest batches are dropped, and their points counted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One batch waiting on disk."""

    path: Path
    seq: int
    points: int
    size: int
    keep: bool = False          # holds alarm events: dropped only beyond the reserve


class Spool:
    """Batches that could not be written yet, oldest first, at most ``max_bytes`` on disk."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.tmp"):
            stale.unlink()  # an append interrupted by a crash never completed
        self._batches: list[SpooledBatch] = sorted(
            (b for b in map(self._parse, self.dir.glob("*.lp")) if b is not None),
            key=lambda b: b.seq)
        self._next = self._batches[-1].seq + 1 if self._batches else 0
        self.bytes = sum(b.size for b in self._batches)
        self._points = sum(b.points for b in self._batches)
        self.dropped_points = 0
        self.dropped_alarm_batches = 0
        if self._batches:
            log.info("spool %s: %d batches (%d points) from a previous run to replay",
                     self.dir, len(self._batches), self.points)

    @staticmethod
    def _parse(path: Path) -> SpooledBatch | None:
        try:
            seq, points, *flag = path.stem.split("-")
            return SpooledBatch(path, int(seq), int(points), path.stat().st_size,
                                flag == ["e"])
        except (ValueError, OSError):
            log.warning("spool: ignoring unexpected file %s", path)
            return None

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def points(self) -> int:
        """Points waiting in the spool."""
        return self._points

    def append(self, body: bytes, points: int, keep: bool = False) -> SpooledBatch:
        """Store a batch (returned); drops the oldest batches while over the byte limit —
        batches marked ``keep`` (alarm events) last, and only beyond a reserve of a tenth of
        the limit."""
        seq = self._next
        self._next += 1
        path = self.dir / f"{seq:020d}-{points}{'-e' if keep else ''}.lp"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(path)
        stored = SpooledBatch(path, seq, points, len(body), keep)
        self._batches.append(stored)
        self.bytes += len(body)
        self._points += points
        while self.bytes > self.max_bytes and len(self._batches) > 1:
            victim = next((b for b in self._batches if not b.keep and b is not stored), None)
            if victim is None:
                if self.bytes <= self.max_bytes * 1.1:
                    break               # alarm events use the reserve
                victim = self._batches[0]
            self.remove(victim)
            self.dropped_points += victim.points
            if victim.keep:
                self.dropped_alarm_batches += 1
            log.error("spool full (%d bytes): dropped %d oldest points%s", self.max_bytes,
                      victim.points, " WITH ALARM EVENTS (reserve exhausted)"
                      if victim.keep else "")
        return stored

    def oldest(self) -> tuple[SpooledBatch, bytes] | None:
        """The oldest batch and its body, or None when empty."""
        if not self._batches:
            return None
        b = self._batches[0]
        return b, b.path.read_bytes()

    def remove(self, batch: SpooledBatch) -> None:
        """Forget a batch once it has been written (nothing if it is gone already)."""
        if batch not in self._batches:
            return
        self._batches.remove(batch)
        self.bytes -= batch.size
        self._points -= batch.points
        batch.path.unlink(missing_ok=True)
