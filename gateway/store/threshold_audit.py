"""Audit-logging threshold changes: at start the gateway compares every point's alarm
settings with those it ran last time and records each difference (old → new) in the audit
log. Altering alarm thresholds is an offence under PRC Criminal Law art. 134-1 when done to
hide a hazard, so a changed limit must leave a trace even when it was made in the file.
"""

from __future__ import annotations

import getpass
import math

import orjson
from sqlalchemy import select

from alerting.table import RuleTable
from gateway.store import audit as auditlog
from gateway.store.models import Database, ThresholdSnapshot

FIELDS = ("lolo", "lo", "hi", "hihi", "deadband", "on_ms", "off_ms", "range_low", "range_high",
          "roc_rise", "roc_fall", "stale_ms", "latched")
MAX_RECORDS = 1000        # per start; beyond that one summary record says how many more


def settings_of(table: RuleTable) -> dict[str, dict[str, float | int | bool | None]]:
    """Point id → its alarm settings (NaN, i.e. not set, as None)."""
    cols = {f: getattr(table, f).tolist() for f in FIELDS}
    out: dict[str, dict[str, float | int | bool | None]] = {}
    for i, pid in enumerate(table.ids.tolist()):
        row: dict[str, float | int | bool | None] = {}
        for f in FIELDS:
            v = cols[f][i]
            row[f] = None if isinstance(v, float) and math.isnan(v) else v
        out[str(pid)] = row
    return out


def record_changes(db: Database, enterprise: str, table: RuleTable, source: str,
                   now_ms: int) -> int:
    """Audit every changed, added or removed point since the last start; returns how many
    points changed (0 on the first start, which records a baseline)."""
    current = settings_of(table)
    actor = f"config:{getpass.getuser()}"
    with db.session.begin() as s:
        before = {r.point: r for r in s.execute(select(ThresholdSnapshot).where(
            ThresholdSnapshot.enterprise == enterprise)).scalars()}
        if not before:
            auditlog.append(s, actor, "config.baseline", f"config/{enterprise}",
                            {"points": len(current), "source": source}, now_ms)
            s.add_all(ThresholdSnapshot(enterprise=enterprise, point=p,
                                        settings=orjson.dumps(v).decode())
                      for p, v in current.items())
            return 0
        changed = 0
        for pid, new in current.items():
            old_row = before.pop(pid, None)
            old = orjson.loads(old_row.settings) if old_row is not None else None
            if old == new:
                continue
            changed += 1
            if changed <= MAX_RECORDS:
                diff = ({f: {"old": old.get(f), "new": new[f]} for f in FIELDS
                         if old.get(f) != new[f]} if old is not None else {"added": new})
                auditlog.append(s, actor, "config.threshold_change", f"point/{pid}",
                                {"source": source, "changes": diff}, now_ms)
            if old_row is None:
                s.add(ThresholdSnapshot(enterprise=enterprise, point=pid,
                                        settings=orjson.dumps(new).decode()))
            else:
                old_row.settings = orjson.dumps(new).decode()
        for pid, gone in before.items():
            changed += 1
            if changed <= MAX_RECORDS:
                auditlog.append(s, actor, "config.threshold_change", f"point/{pid}",
                                {"source": source, "changes": {"removed":
                                                               orjson.loads(gone.settings)}},
                                now_ms)
            s.delete(gone)
        if changed > MAX_RECORDS:
            auditlog.append(s, actor, "config.threshold_change", f"config/{enterprise}",
                            {"source": source, "more_points_changed": changed - MAX_RECORDS},
                            now_ms)
        return changed
