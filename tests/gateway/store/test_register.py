"""The hazard register and the audit log in a real database: SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from alerting.register import Five, RegisterError
from gateway.cli import main
from gateway.store.models import Database
from gateway.store.register import Register

DAY = 86_400_000
FIVE = Five(measures="replace the flange gasket", funds_cny=18_000.0,
            responsible_person="Li Wei", deadline_ms=10 * DAY, contingency_plan="EP-LPG-03")


def test_an_entry_walks_the_whole_loop_with_history_and_audit(db: Database) -> None:
    reg = Register(db)
    eid = reg.create(enterprise="E1", hazard_source="lpg_farm", point="GT101",
                     title="GT101 L2 for 40 min", level="major", source="alarm_duration",
                     actor="system", evidence={"alarm_ids": ["GT101:process"]}, now_ms=0)
    with pytest.raises(RegisterError, match="missing: measures, funds_cny"):
        reg.transition(eid, "start", "safety.wang", now_ms=DAY)
    assert reg.get(eid).state == "registered"                 # the refusal changed nothing
    assert [e.id for e in reg.supervised(now_ms=DAY)] == [eid]  # major: listed at once
    reg.transition(eid, "update_five", "safety.wang", five=FIVE, now_ms=DAY)
    assert reg.transition(eid, "start", "safety.wang", now_ms=2 * DAY) == "rectifying"
    assert reg.transition(eid, "submit", "maint.zhao", now_ms=3 * DAY) == \
        "pending_verification"
    with pytest.raises(RegisterError, match="cannot submit an entry that is "
                                            "pending_verification"):
        reg.transition(eid, "submit", "maint.zhao")
    assert reg.transition(eid, "verify_fail", "safety.wang", verifier="chief.sun",
                          comment="still leaking at 5 %LEL", now_ms=4 * DAY) == "rectifying"
    reg.transition(eid, "submit", "maint.zhao", now_ms=5 * DAY)
    assert reg.transition(eid, "verify_pass", "safety.wang", verifier="chief.sun",
                          comment="0 %LEL for 48 h", now_ms=6 * DAY) == "closed"
    row = reg.get(eid)
    assert (row.state, row.closed_ms, row.responsible_person) == ("closed", 6 * DAY, "Li Wei")
    assert [(h.from_state, h.to_state) for h in reg.history(eid)] == [
        ("registered", "registered"), ("registered", "rectifying"),
        ("rectifying", "pending_verification"), ("pending_verification", "rectifying"),
        ("rectifying", "pending_verification"), ("pending_verification", "closed")]
    with pytest.raises(RegisterError, match="closed entries are final"):
        reg.transition(eid, "start", "safety.wang")
    assert reg.supervised(now_ms=100 * DAY) == []
    with db.session() as s:
        actions = [a for (a,) in s.execute(text("SELECT action FROM audit_log ORDER BY id"))]
    assert actions == ["register.create", "register.update_five", "register.start",
                       "register.submit", "register.verify_fail", "register.submit",
                       "register.verify_pass"]


def test_overdue_general_entries_are_listed_as_supervised(db: Database) -> None:
    reg = Register(db)
    eid = reg.create(enterprise="E1", hazard_source="dust", title="lock valve fault repeats",
                     level="general", source="alarm_recurrence", actor="system",
                     five=Five(deadline_ms=3 * DAY), now_ms=0)
    reg.transition(eid, "start", "safety.wang", now_ms=DAY)
    assert reg.overdue(now_ms=3 * DAY) == [] and reg.supervised(now_ms=3 * DAY) == []
    assert [e.id for e in reg.overdue(now_ms=3 * DAY + 1)] == [eid]
    assert [e.id for e in reg.supervised(now_ms=3 * DAY + 1)] == [eid]


def test_bad_input_is_refused_and_changes_nothing(db: Database) -> None:
    reg = Register(db)
    with pytest.raises(RegisterError, match="level must be one of general, major"):
        reg.create(enterprise="E1", hazard_source="x", title="t", level="huge",  # type: ignore[arg-type]
                   source="inspection", actor="u")
    with pytest.raises(RegisterError, match="no register entry 42"):
        reg.transition(42, "start", "u")
    assert reg.open_entries() == []
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 0


def test_audit_verify_passes_intact_and_names_an_edited_or_deleted_record(
        db: Database, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    reg = Register(db)
    eid = reg.create(enterprise="E1", hazard_source="cl2", title="AT201 drifts", level="general",
                     source="inspection", actor="insp.qian", now_ms=0)
    reg.transition(eid, "start", "safety.wang", now_ms=1)
    reg.transition(eid, "submit", "maint.zhao", now_ms=2)
    assert main(["audit", "verify", "--db", database_url]) == 0
    assert "audit log intact: 3 records" in capsys.readouterr().out
    with db.engine.begin() as c:     # someone edits the log behind the gateway's back
        c.execute(text("UPDATE audit_log SET actor = 'nobody' WHERE id = 2"))
    assert main(["audit", "verify", "--db", database_url]) == 1
    assert "record 2 (register.start by nobody) was altered" in capsys.readouterr().out
    with db.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET actor = 'safety.wang' WHERE id = 2"))
        c.execute(text("DELETE FROM audit_log WHERE id = 2"))
    assert main(["audit", "verify", "--db", database_url]) == 1
    assert "record 2 is missing (deleted?)" in capsys.readouterr().out


def test_audit_verify_on_a_database_without_a_log_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--db", str(tmp_path / "empty.sqlite3")]) == 2
    assert "cannot read the audit log at sqlite:///" in capsys.readouterr().err
