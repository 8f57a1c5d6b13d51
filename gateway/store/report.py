"""The daily regulator report of one enterprise: point online rate, alarms and how they were
handled, open and overdue hazards. A day runs midnight to midnight, Beijing time.

JSON (``report``) and CSV (``report_csv``: one ``metric,value`` row per figure, dotted names)::

    {"enterprise": "91320582MA1W3K4X5R", "day": "2026-11-23",
     "points": {"total": 16, "online": 16, "online_rate": 1.0},
     "alarms": {"count": 4, "acknowledged_in_time": 1, "acknowledged_late": 1,
                "self_cleared": 1, "shelved_or_removed": 0, "unhandled": 1,
                "handled": 1, "handling_rate": 0.25, "ack_within_s": 300,
                "notified": 2, "escalated": 1},
     "hazards": {"open": 2, "overdue": 1, "major_open": 1, "supervised": 1, "closed": 0}}

The figures, from the alarm history (``alarm`` occurrences: one per activation):

- ``points.online``: points with at least one good reading that day (InfluxDB; null when it
  cannot be asked), ``online_rate`` = online / total.
- ``alarms.count``: alarm occurrences annunciated that day (an occurrence is one activation;
  a rise to a higher level while it stands is the same occurrence).
- ``acknowledged_in_time``: of those, acknowledged by a person within ``ack_within_s`` of
  being annunciated (the site's ``escalation.ack_within_s``, default 300 s); ``handled`` is
  the same number. ``acknowledged_late``: acknowledged later, but before the day ended.
- ``self_cleared``: returned to normal by itself before anyone acknowledged it (a non-latching
  alarm); counted apart, never as handled.
- ``shelved_or_removed``: shelved, suppressed or taken out of service before an
  acknowledgement.
- ``unhandled``: still unacknowledged when the day ended.
- ``handling_rate`` = handled / count; null when there were no alarms (nothing to rate).
- ``notified``: occurrences for which any escalation step fired (step 0 included: the first
  responders); ``escalated``: occurrences for which a step beyond the first (step index ≥ 1)
  fired, i.e. the alarm went past the first responders.
- ``hazards.supervised``: open entries under supervised listing (挂牌督办): major, overdue, or
  listed by a regulator — the same definition as the API's ``supervised`` and the console.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from alerting.escalation import ACK_WITHIN_S as ESCALATION_ACK_WITHIN_S
from gateway.influx import query as influxql
from gateway.settings import InfluxSettings
from gateway.store.models import Alarm, Database, Escalation, RegisterEntry, ours
from gateway.store.register import Register

BEIJING = ZoneInfo("Asia/Shanghai")
ACK_WITHIN_S = ESCALATION_ACK_WITHIN_S


def day_bounds(day: date) -> tuple[int, int]:
    """[start, end) of a Beijing-time day, Unix ms."""
    start = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000)


def online_points(influx: InfluxSettings, enterprise: str, start_ms: int, end_ms: int,
                  ) -> int | None:
    """Points with at least one good reading in [start, end), from InfluxDB (v1 API); None
    when the target cannot be asked that way."""
    series = influxql.query(
        influx, f"SELECT count(quality) FROM reading WHERE enterprise = '{enterprise}' AND "
                f"quality = 0 AND time >= {start_ms}ms AND time < {end_ms}ms GROUP BY point")
    return None if series is None else len(series)


def alarm_figures(db: Database, start: int, end: int, ack_within_s: float,
                  enterprise: str = "") -> dict[str, Any]:
    """The ``alarms`` figures of [start, end) of ``enterprise`` (definitions in the module
    docstring)."""
    with db.session() as s:
        rows = s.execute(select(Alarm.id, Alarm.annunciated_ms, Alarm.handled_ms,
                                Alarm.handled_event).where(
            (Alarm.annunciated_ms >= start) & (Alarm.annunciated_ms < end),
            ours(Alarm.enterprise, enterprise))).all()
        steps = (select(Escalation.alarm_row, func.max(Escalation.step))
                 .join(Alarm, Alarm.id == Escalation.alarm_row)
                 .where((Alarm.annunciated_ms >= start) & (Alarm.annunciated_ms < end)
                        & (Escalation.step >= 0) & ours(Alarm.enterprise, enterprise))
                 .group_by(Escalation.alarm_row))
        fired: dict[int, int] = {row: step for row, step in s.execute(steps)}
    limit_ms = ack_within_s * 1000
    kinds = {"acknowledged_in_time": 0, "acknowledged_late": 0, "self_cleared": 0,
             "shelved_or_removed": 0, "unhandled": 0}
    for _, annunciated, handled_ms, event in rows:
        if handled_ms is None or handled_ms >= end:
            kinds["unhandled"] += 1
        elif event == "ack":
            kinds["acknowledged_in_time" if handled_ms - annunciated <= limit_ms
                  else "acknowledged_late"] += 1
        elif event in ("shelve", "remove", "suppress"):
            kinds["shelved_or_removed"] += 1
        else:                  # clear, chatter_end: back to normal with nobody acknowledging
            kinds["self_cleared"] += 1
    count = len(rows)
    handled = kinds["acknowledged_in_time"]
    return {"count": count, **kinds, "handled": handled,
            # nothing to rate is no rate: 1.0 on a day without alarms read as "every alarm
            # handled" on a report that had seen none
            "handling_rate": round(handled / count, 4) if count else None,
            "ack_within_s": ack_within_s, "notified": len(fired),
            "escalated": sum(1 for step in fired.values() if step >= 1)}


def report(db: Database, enterprise: str, total_points: int, day: date,
           online: int | None, ack_within_s: float = ACK_WITHIN_S) -> dict[str, Any]:
    """The report for ``day`` (online: points with a good reading that day, if known)."""
    start, end = day_bounds(day)
    with db.session() as s:
        closed = s.execute(select(func.count()).select_from(RegisterEntry).where(
            (RegisterEntry.closed_ms >= start) & (RegisterEntry.closed_ms < end),
            RegisterEntry.enterprise == enterprise)).scalar_one()
    reg = Register(db)

    def mine(entries: list[RegisterEntry]) -> list[RegisterEntry]:
        # one database holds many enterprises' registers: the report is of one
        return [e for e in entries if e.created_ms < end and e.enterprise == enterprise]
    open_entries = mine(reg.open_entries())
    return {
        "enterprise": enterprise, "day": day.isoformat(),
        "points": {"total": total_points, "online": online,
                   "online_rate": round(online / total_points, 4)
                   if online is not None and total_points else None},
        "alarms": alarm_figures(db, start, end, ack_within_s, enterprise),
        "hazards": {"open": len(open_entries),
                    "overdue": len(mine(reg.overdue(end))),
                    "major_open": sum(e.level == "major" for e in open_entries),
                    "supervised": len(mine(reg.supervised(end))),
                    "closed": closed},
    }


def report_csv(rep: dict[str, Any]) -> str:
    """``metric,value`` rows, nested names dotted."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["metric", "value"])

    def rows(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                rows(f"{prefix}{k}.", v)
            else:
                w.writerow([f"{prefix}{k}", "" if v is None else v])
    rows("", rep)
    return out.getvalue()
