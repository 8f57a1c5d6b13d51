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


def source_status_lines(core: Core, now_ms: int) -> bytes:
    """One ``source_status`` line per hazard source."""
    tb, st, lc = core.table, core.engine.state, core.engine.lifecycle
    n = len(tb)
    state = np.asarray(lc.state)
    per_type = state[:POINT_TYPES * n].reshape(POINT_TYPES, n)
    standing = per_type != AlarmState.NORMAL
    unacked = np.isin(per_type, _UNACKED)
    offline = (np.asarray(st.stale) > 0) | (np.asarray(st.fault) > 0)
    sources = np.asarray(tb.sources)
    # a voting alarm counts for the source of its first member point
    vote_src = [tb.sources[int(v.members[0])] if len(v.members) else "" for v in tb.votes]
    vote_on = state[POINT_TYPES * n:] != AlarmState.NORMAL
    rows = []
    ent = escape_tag(core.enterprise)
    for sid in sorted(set(tb.sources)):
        mine = sources == sid
        votes = sum(1 for i, s in enumerate(vote_src) if s == sid and vote_on[i])
        process = int(np.count_nonzero(standing[_PROCESS] & mine)) + votes
        other = int(np.count_nonzero(standing[:, mine])) - (process - votes)
        off = int(np.count_nonzero(offline & mine))
        status = 2 if process else (1 if other or off else 0)
        level = LEVEL_CODE.get(core.source_levels.get(sid, ""), 0)
        rows.append(f"source_status,enterprise={ent},source={escape_tag(sid)} "
                    f"level={level}i,status={status}i,alarms_standing={process + other}i,"
                    f"alarms_unacked={int(np.count_nonzero(unacked[:, mine]))}i,"
                    f"points={int(np.count_nonzero(mine))}i,points_offline={off}i {now_ms}")
    return ("\n".join(rows) + "\n").encode() if rows else b""


def point_limits_lines(core: Core, now_ms: int) -> bytes:
    """One ``point_limits`` line per point that has a limit."""
    tb = core.table
    ent = escape_tag(core.enterprise)
    limits = {"lolo": tb.lolo, "lo": tb.lo, "hi": tb.hi, "hihi": tb.hihi}
    rows = []
    for i, pid in enumerate(tb.ids.tolist()):
        fields = [f"{k}={float(v[i])!r}" for k, v in limits.items() if np.isfinite(v[i])]
        if fields:
            rows.append(f"point_limits,enterprise={ent},source={escape_tag(tb.sources[i])},"
                        f"equipment={escape_tag(tb.equipments[i])},point={escape_tag(str(pid))},"
                        f"kind={escape_tag(tb.kinds[i])} {','.join(fields)} {now_ms}")
    return ("\n".join(rows) + "\n").encode() if rows else b""


LIMITS_EVERY_MS = 60_000     # limits change only with the config: once a minute draws them


def dashboard_lines(core: Core, now_ms: int, last_limits_ms: int | None,
                    ) -> tuple[bytes, int | None]:
    """Alarm-system health, source status and (once a minute) point limits; returns the lines
    and when limits were last written."""
    body = core.health_lines(now_ms) + source_status_lines(core, now_ms)
    if last_limits_ms is None or now_ms - last_limits_ms >= LIMITS_EVERY_MS:
        body += point_limits_lines(core, now_ms)
        last_limits_ms = now_ms
    return body, last_limits_ms
