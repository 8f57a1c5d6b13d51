"""Periodic status measurements for the control room's dashboards (InfluxDB line protocol).

- ``source_status``: per hazard source, its GB 18218 level (1..4 for 一级..四级, 0 where it
  has none), a status (0 normal, 1 attention: integrity, fault, stale or predictive alarms or
  points off line; 2 alarm: a process or voting alarm active), the alarms standing and
  unacknowledged, and the points off line (stale or bad quality now).
- ``point_limits``: per point, its configured limits (lolo, lo, hi, hihi; the GB/T 50493 L1
  and L2 of a gas point are hi and hihi), so a panel can draw them beside the values.

Both are computed from the engine's arrays, one pass per call, and written before ingest
starts and then by the alarm clock (``gateway.stream.runtime``), and by the test kit
(``gateway.sim.kit``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerting.lifecycle import AlarmState
from alerting.table import ALARM_TYPES, POINT_TYPES
from gateway.influx.schema import POINT_LIMITS, SOURCE_STATUS, line, lines
from gateway.stream.core import Core

LEVEL_CODE = {"一级": 1, "二级": 2, "三级": 3, "四级": 4}
_PROCESS = ALARM_TYPES.index("process")
_UNACKED = (AlarmState.UNACK, AlarmState.RTN_UNACK)
# Limits change only with the config. Each point's are rewritten this often, a share at each
# call, so that 100 000 points do not make a burst of 400 000 field values; the dashboards
# look this far back before their range for them (gateway.dashboards.build).
LIMITS_EVERY_MS = 600_000


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
        # and a device off line for the source of its first point
        self.device_codes = np.array([code_of[tb.sources[int(d.members[0])]]
                                      for d in tb.devices], np.intp)
        self.levels = [LEVEL_CODE.get(core.source_levels.get(sid, ""), 0)
                       for sid in self.sources]
        self._limits, self._ends = _limits_template(core)
        self._cursor = 0                # the next line of the template to write
        self._owed = 0                  # lines due × LIMITS_EVERY_MS, not yet written
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
        devices = state[tb.first_device_slot:]
        other = np.bincount(self.codes, standing.sum(axis=0), k) - process \
            + np.bincount(self.device_codes, devices != AlarmState.NORMAL, k)
        unacked = np.bincount(self.codes, np.isin(per_type, _UNACKED).sum(axis=0), k) \
            + np.bincount(self.device_codes, np.isin(devices, _UNACKED), k)
        offline = np.bincount(self.codes, (np.asarray(st.stale) > 0)
                              | (np.asarray(st.fault) > 0), k)
        points = np.bincount(self.codes, minlength=k)
        rows = []
        for i, sid in enumerate(self.sources):
            proc = int(process[i] + votes[i])
            status = 2 if proc else (1 if other[i] or offline[i] else 0)
            rows.append(line(SOURCE_STATUS, {"enterprise": core.enterprise, "source": sid}, {
                "level": self.levels[i], "status": status,
                "alarms_standing": proc + int(other[i]), "alarms_unacked": int(unacked[i]),
                "points": int(points[i]), "points_offline": int(offline[i])}, now_ms))
        return lines(rows)

    def limits_due(self, now_ms: int) -> bytes:
        """Every point's limits on the first call; then, in turn, the share of the points
        that the time since the last call makes due, so that each point's limits are
        rewritten at least every ``LIMITS_EVERY_MS`` whatever the calls' cadence."""
        n = len(self._ends)
        if self.last_limits_ms is None:
            share = n
        else:
            self._owed += n * max(0, now_ms - self.last_limits_ms)
            share, self._owed = divmod(self._owed, LIMITS_EVERY_MS)
        self.last_limits_ms = now_ms
        if n == 0 or share == 0:
            return b""
        start, stop = self._cursor, self._cursor + min(share, n)
        self._cursor = stop % n
        ts = str(now_ms).encode()
        if stop <= n:
            return self._slice(start, stop).replace(_TS, ts)
        return (self._slice(start, n) + self._slice(0, stop - n)).replace(_TS, ts)

    def _slice(self, start: int, stop: int) -> bytes:
        return self._limits[int(self._ends[start - 1]) if start else 0:int(self._ends[stop - 1])]

    def lines(self, now_ms: int) -> bytes:
        """Alarm-system health, source status and the point limits due."""
        return self.core.health_lines(now_ms) + self.source_status(now_ms) \
            + self.limits_due(now_ms)


_TS = b"\x00"     # where each limits line's timestamp goes


def _limits_template(core: Core) -> tuple[bytes, npt.NDArray[np.int64]]:
    """The limits' lines with a placeholder for the time, and where each line ends."""
    tb = core.table
    limits = {"lolo": tb.lolo, "lo": tb.lo, "hi": tb.hi, "hihi": tb.hihi}
    rows = [line(POINT_LIMITS, {"enterprise": core.enterprise, "source": tb.sources[i],
                                "equipment": tb.equipments[i], "point": str(pid),
                                "kind": tb.kinds[i]},
                 {k: float(v[i]) for k, v in limits.items()}, None)
            for i, pid in enumerate(tb.ids.tolist())]
    # the template: each line ends in " <placeholder>\n" for its time
    out = [r[:-1].encode() + b" " + _TS + b"\n" for r in rows if r]
    return b"".join(out), np.cumsum([len(x) for x in out], dtype=np.int64)
