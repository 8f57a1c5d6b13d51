"""Periodic status measurements for the control room's dashboards (InfluxDB line protocol).

- ``source_status``: per hazard source, its GB 18218 level (1..4 for 一级..四级, 0 where it
  has none), a status (0 normal, 1 attention: integrity, fault, stale or predictive alarms or
  points off line; 2 alarm: a process or voting alarm active), the alarms standing and
  unacknowledged, and the points off line (stale or bad quality now).
- ``point_limits``: per point, its configured limits (lolo, lo, hi, hihi; the GB/T 50493 L1
  and L2 of a gas point are hi and hihi), so a panel can draw them beside the values.

Both are computed from the engine's arrays, one pass per call, and written by the alarm clock
(``gateway.runtime``) and the test kit (``gateway.simkit``).
"""

from __future__ import annotations

import numpy as np

from alerting.lifecycle import AlarmState
from alerting.table import ALARM_TYPES, POINT_TYPES
from gateway.core import Core
from gateway.lineproto import escape_tag

LEVEL_CODE = {"一级": 1, "二级": 2, "三级": 3, "四级": 4}
_PROCESS = ALARM_TYPES.index("process")
_UNACKED = (AlarmState.UNACK, AlarmState.RTN_UNACK)
LIMITS_EVERY_MS = 60_000     # limits change only with the config: once a minute draws them


class DashboardStatus:
    """The status lines of one core. Everything that does not change while it runs (which
    source each point belongs to, the limits' line protocol) is prepared once: at 100 000
    points, formatting the limits anew each minute would stall the alarm path."""

    def __init__(self, core: Core) -> None:
        self.core = core
        tb = core.table
        names, codes = np.unique(np.asarray(tb.sources, dtype=object).astype(str),
                                 return_inverse=True)
        self.sources = [str(x) for x in names]
        self.codes = codes.astype(np.intp)
        code_of = {sid: i for i, sid in enumerate(self.sources)}
        # a voting alarm counts for the source of its first member point
        self.vote_codes = np.array([code_of[tb.sources[int(v.members[0])]] for v in tb.votes
                                    if len(v.members)], np.intp)
        self.levels = [LEVEL_CODE.get(core.source_levels.get(sid, ""), 0)
                       for sid in self.sources]
        self._limits = _limits_template(core)
        self.last_limits_ms: int | None = None

    def source_status(self, now_ms: int) -> bytes:
        """One ``source_status`` line per hazard source."""
        core, tb, st = self.core, self.core.table, self.core.engine.state
        n, k = len(tb), len(self.sources)
        state = np.asarray(core.engine.lifecycle.state)
        per_type = state[:POINT_TYPES * n].reshape(POINT_TYPES, n)
        standing = per_type != AlarmState.NORMAL
        process = np.bincount(self.codes, standing[_PROCESS], k)
        vote_on = state[POINT_TYPES * n:POINT_TYPES * n + len(self.vote_codes)] \
            != AlarmState.NORMAL
        votes = np.bincount(self.vote_codes, vote_on, k)
        other = np.bincount(self.codes, standing.sum(axis=0), k) - process
        unacked = np.bincount(self.codes, np.isin(per_type, _UNACKED).sum(axis=0), k)
        offline = np.bincount(self.codes, (np.asarray(st.stale) > 0)
                              | (np.asarray(st.fault) > 0), k)
        points = np.bincount(self.codes, minlength=k)
        ent = escape_tag(core.enterprise)
        rows = []
        for i, sid in enumerate(self.sources):
            proc = int(process[i] + votes[i])
            status = 2 if proc else (1 if other[i] or offline[i] else 0)
            rows.append(f"source_status,enterprise={ent},source={escape_tag(sid)} "
                        f"level={self.levels[i]}i,status={status}i,"
                        f"alarms_standing={proc + int(other[i])}i,"
                        f"alarms_unacked={int(unacked[i])}i,points={int(points[i])}i,"
                        f"points_offline={int(offline[i])}i {now_ms}")
        return ("\n".join(rows) + "\n").encode() if rows else b""

    def point_limits(self, now_ms: int) -> bytes:
        """One ``point_limits`` line per point that has a limit."""
        return self._limits.replace(_TS, str(now_ms).encode())

    def lines(self, now_ms: int) -> bytes:
        """Alarm-system health, source status and, once a minute, point limits."""
        body = self.core.health_lines(now_ms) + self.source_status(now_ms)
        if self.last_limits_ms is None or now_ms - self.last_limits_ms >= LIMITS_EVERY_MS:
            body += self.point_limits(now_ms)
            self.last_limits_ms = now_ms
        return body


_TS = b"\x00"     # where each limits line's timestamp goes


def _limits_template(core: Core) -> bytes:
    tb = core.table
    ent = escape_tag(core.enterprise)
    limits = {"lolo": tb.lolo, "lo": tb.lo, "hi": tb.hi, "hihi": tb.hihi}
    rows = []
    for i, pid in enumerate(tb.ids.tolist()):
        fields = [f"{k}={float(v[i])!r}" for k, v in limits.items() if np.isfinite(v[i])]
        if fields:
            rows.append(f"point_limits,enterprise={ent},source={escape_tag(tb.sources[i])},"
                        f"equipment={escape_tag(tb.equipments[i])},point={escape_tag(str(pid))},"
                        f"kind={escape_tag(tb.kinds[i])} {','.join(fields)} ")
    return b"".join(r.encode() + _TS + b"\n" for r in rows)
