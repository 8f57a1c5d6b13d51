"""Threshold changes between two starts are audit-logged (SQLite and PostgreSQL)."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from alerting.table import compile_rules
from gateway.store.audit import verify_log
from gateway.store.models import AuditRecord, Database
from gateway.store.threshold_audit import record_changes
from tests.gateway.test_e2e import small_site


def table_with(hi_l1: float, drop_p1: bool = False):  # type: ignore[no-untyped-def]
    site = small_site(1502)
    ent = site.enterprise
    eq = ent.hazard_sources["farm"].equipment["V1"]
    points = dict(eq.points)
    points["L1"] = points["L1"].model_copy(update={"hi": hi_l1})
    if drop_p1:
        del points["P1"]
    ent = ent.model_copy(update={"hazard_sources": {"farm": ent.hazard_sources["farm"]
                                                    .model_copy(update={"equipment": {
                                                        "V1": eq.model_copy(
                                                            update={"points": points})}})}})
    return compile_rules(ent, {})


def test_changed_and_removed_thresholds_are_recorded_with_old_and_new(db: Database) -> None:
    assert record_changes(db, "E1", table_with(10.0), "plant.yaml", 1) == 0      # baseline
    assert record_changes(db, "E1", table_with(10.0), "plant.yaml", 2) == 0      # unchanged
    assert record_changes(db, "E1", table_with(11.0, drop_p1=True), "plant.yaml", 3) == 2
    with db.session() as s:
        rows = list(s.execute(select(AuditRecord).order_by(AuditRecord.id)).scalars())
        assert [(r.action, r.subject) for r in rows] == [
            ("config.baseline", "config/E1"),
            ("config.threshold_change", "point/L1"),
            ("config.threshold_change", "point/P1")]
        assert orjson.loads(rows[1].detail)["changes"] == {"hi": {"old": 10.0, "new": 11.0}}
        assert "removed" in orjson.loads(rows[2].detail)["changes"]
        assert verify_log(s) == (3, None)
