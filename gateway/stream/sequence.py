"""Which wire messages are new: per (edge, boot), everything up to the highest sequence seen
except the holes in between.

Edges replay their spool after an outage while live messages keep flowing, so old sequence
numbers legitimately arrive after newer ones: a hole being filled is fresh, a sequence already
seen is a duplicate. Holes are kept as intervals, so even a long outage costs a few numbers.

A boot first met in this process (a restart: the state before it is not kept here) starts
at the first number seen: what lies below it is unknown, not missing, so a restart does not
count the previous process's messages; a lower number that comes later (the edge's spool
being replayed) is still taken once.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

MAX_BOOTS_PER_EDGE = 4


@dataclass
class _Boot:
    top: int = -1
    holes: list[list[int]] = field(default_factory=list)   # sorted, disjoint [lo, hi]
    known_from: int = 0          # numbers below were before this process: not "missing"

    def missing(self) -> int:
        return sum(hi - max(lo, self.known_from) + 1 for lo, hi in self.holes
                   if hi >= self.known_from)

    def accept(self, seq: int) -> bool:
        if seq > self.top:
            if seq > self.top + 1:
                self.holes.append([self.top + 1, seq - 1])
            self.top = seq
            return True
        i = bisect.bisect_right(self.holes, [seq, float("inf")]) - 1
        if i < 0 or not self.holes[i][0] <= seq <= self.holes[i][1]:
            return False                                     # seen before
        lo, hi = self.holes[i]
        pieces = [p for p in ([lo, seq - 1], [seq + 1, hi]) if p[0] <= p[1]]
        self.holes[i:i + 1] = pieces
        return True


@dataclass
class SequenceTracker:
    """Fresh/duplicate decisions and gap counts for all edges."""

    edges: dict[str, dict[int, _Boot]] = field(default_factory=dict)
    duplicates: int = 0

    def fresh(self, edge: str, boot: int, seq: int) -> bool:
        """Whether (edge, boot, seq) has not been seen; counts duplicates."""
        boots = self.edges.setdefault(edge, {})
        b = boots.get(boot)
        if b is None:
            b = boots[boot] = _Boot(known_from=seq)
            if len(boots) > MAX_BOOTS_PER_EDGE:   # forget the oldest boot
                del boots[min(boots)]
        if b.accept(seq):
            return True
        self.duplicates += 1
        return False

    def jump(self, edge: str, boot: int, seq: int) -> int:
        """How far ``seq`` lies past the highest number seen of its boot (0 for a boot not
        seen yet or a number not beyond the highest)."""
        b = self.edges.get(edge, {}).get(boot)
        return max(0, seq - b.top) if b is not None and b.top >= 0 else 0

    def state(self) -> dict[str, dict[str, list[Any]]]:
        """A copy of what is known, as JSON-able data (edge → boot → [top, holes,
        known_from])."""
        return {e: {str(n): [b.top, [list(h) for h in b.holes], b.known_from]
                    for n, b in boots.items()} for e, boots in self.edges.items()}

    @staticmethod
    def from_state(data: dict[str, dict[str, list[Any]]]) -> SequenceTracker:
        """A tracker that knows what ``state`` described."""
        t = SequenceTracker()
        for e, boots in data.items():
            t.edges[e] = {int(n): _Boot(int(top), [[int(lo), int(hi)] for lo, hi in holes],
                                        int(known)) for n, (top, holes, known) in boots.items()}
        return t

    def missing(self) -> int:
        """Messages still missing below each boot's highest sequence (gaps not yet filled)."""
        return sum(b.missing() for boots in self.edges.values() for b in boots.values())

    def gaps(self) -> int:
        """Open gaps (runs of missing messages)."""
        return sum(len(b.holes) for boots in self.edges.values() for b in boots.values())
