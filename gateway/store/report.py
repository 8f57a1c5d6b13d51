"""The daily regulator report of one enterprise: point online rate, alarms and how they were
handled, open and overdue hazards. A day runs midnight to midnight, Beijing time.

JSON (``report``) and CSV (``report_csv``: one ``metric,value`` row per figure, dotted names)::

    {"enterprise": "91320582MA1W3K4X5R", "day": "2026-11-23",
     "points": {"total": 16, "online": 16, "online_rate": 1.0},          # online: any good
     "alarms": {"count": 3, "handled": 2, "handling_rate": 0.667,        #   reading that day
                "escalated": 1},                        # rates: null when nothing to rate
     "hazards": {"open": 2, "overdue": 1, "major_open": 1, "supervised": 1, "closed": 0}}
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from gateway.influx import query as influxql
from gateway.settings import InfluxSettings
from gateway.store.models import Alarm, Database, Escalation, RegisterEntry
from gateway.store.register import Register

BEIJING = ZoneInfo("Asia/Shanghai")


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


def report(db: Database, enterprise: str, total_points: int, day: date,
           online: int | None) -> dict[str, Any]:
    """The report for ``day`` (online: points with a good reading that day, if known)."""
    start, end = day_bounds(day)
    with db.session() as s:
        in_day = (Alarm.annunciated_ms >= start) & (Alarm.annunciated_ms < end)
        count = s.execute(select(func.count()).select_from(Alarm).where(in_day)).scalar_one()
        handled = s.execute(select(func.count()).select_from(Alarm).where(
            in_day & Alarm.handled_ms.is_not(None) & (Alarm.handled_ms < end))).scalar_one()
        escalated = s.execute(select(func.count(func.distinct(Escalation.alarm_row)))
                              .join(Alarm, Alarm.id == Escalation.alarm_row)
                              .where(in_day & (Escalation.step > 0))).scalar_one()
        closed = s.execute(select(func.count()).select_from(RegisterEntry).where(
            (RegisterEntry.closed_ms >= start) & (RegisterEntry.closed_ms < end))).scalar_one()
    reg = Register(db)
    open_entries = [e for e in reg.open_entries() if e.created_ms < end]
    return {
        "enterprise": enterprise, "day": day.isoformat(),
        "points": {"total": total_points, "online": online,
                   "online_rate": round(online / total_points, 4)
                   if online is not None and total_points else None},
        "alarms": {"count": count, "handled": handled,
                   # nothing to rate is no rate: 1.0 on a day without alarms read as
                   # "every alarm handled" on a report that had seen none
                   "handling_rate": round(handled / count, 4) if count else None,
                   "escalated": escalated},
        "hazards": {"open": len(open_entries),
                    "overdue": len([e for e in reg.overdue(end) if e.created_ms < end]),
                    "major_open": sum(e.level == "major" for e in open_entries),
                    "supervised": len([e for e in reg.supervised(end) if e.created_ms < end]),
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
