"""An audit chain no database user can rewrite (SQLite and PostgreSQL): each rewrite that
passed ``hazgw audit verify`` before is caught now — the newest records deleted (the anchor),
a full re-chain without one shelving and with an action re-attributed (the key; the anchor),
``UPDATE register_entry SET state = 'closed'`` (the entry's digest), an alarm-history row
edited and a transition deleted (the seals). The anchor loop writes the head into a real
InfluxDB 1.6.7, where ``--influx-anchors`` reads it back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerting.audit import GENESIS, canonical, chain_hash
from alerting.batch import ReadingBatch
from alerting.register import Five
from edge.mqtt import MqttSettings
from gateway.app import escalating, running_core
from gateway.cli import main
from gateway.settings import AuditSettings, InfluxSettings, Settings
from gateway.store import audit
from gateway.store.models import AuditRecord, Database
from gateway.store.register import Register
from gateway.stream.compiled import as_compiled
from gateway.stream.core import Core
from tests.gateway.test_e2e import small_site
from tests.services import Server, influx_query

# the security suite (pytest -m security), item 3. rewriting the audit chain
pytestmark = pytest.mark.security

KEY = "the-site-audit-key-kept-off-the-database"


@pytest.fixture
def keyed(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The database opened with the audit key, as the gateway opens it; the CLI sees the
    same key in its environment."""
    monkeypatch.setenv("HAZGW_AUDIT__KEY", KEY)
    db = Database(database_url, audit_key=KEY.encode())
    yield db
    db.close()


def history(db: Database) -> int:
    """A register entry walked to pending verification; returns its id."""
    reg = Register(db)
    eid = reg.create(enterprise="E1", hazard_source="cl2", title="AT201 drifts",
                     level="general", source="inspection", actor="insp.qian", now_ms=1)
    reg.transition(eid, "start", "safety.wang", now_ms=2,
                   five=Five(measures="recalibrate", deadline_ms=10**12))
    reg.transition(eid, "submit", "maint.zhao", now_ms=3)
    with db.session.begin() as s:
        audit.append(s, "op.liu", "alarm.shelve", "alarm/AT201:process", {"minutes": 60}, 4)
        audit.append(s, "op.liu", "alarm.acknowledge", "alarm/GT101:process", {}, 5)
    return eid


def history_row(s: Session, alarm_id: str, ts_ms: int, event: str, level: str,
                value: float) -> None:
    """An alarm-history row as the gateway writes them (raw SQL: the test's own hand)."""
    s.execute(text("INSERT INTO alarm_history (alarm_id, ts_ms, event, from_state, to_state, "
                   "level_name, priority, value, \"limit\", \"user\", reason) VALUES (:a, :t, "
                   ":e, 'unack', 'unack', :l, 1, :v, 25, NULL, NULL)"),
              {"a": alarm_id, "t": ts_ms, "e": event, "l": level, "v": value})


def verify(url: str, *extra: str) -> int:
    return main(["audit", "verify", "--db", url, *extra])


def test_keyed_chain_catches_a_rechain_and_anchors_catch_truncation(
        keyed: Database, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    history(keyed)
    with keyed.session() as s:
        top = audit.head(s)
    assert top is not None and top[0] == 5
    anchor = f"{top[0]}:{top[1]}"
    assert verify(database_url, "--anchor", anchor) == 0
    assert "5 records, 1 anchor(s) reached" in capsys.readouterr().out

    # the newest two records deleted (who shelved and acknowledged is gone): the chain
    # alone is intact, the anchor is not reached
    with keyed.engine.begin() as c:
        saved = c.execute(text("SELECT * FROM audit_log WHERE id >= 4 ORDER BY id")).all()
        c.execute(text("DELETE FROM audit_log WHERE id >= 4"))
    assert verify(database_url) == 0
    capsys.readouterr()
    assert verify(database_url, "--anchor", anchor) == 1
    assert "record 5 was anchored" in capsys.readouterr().out
    cols = "id, ts_ms, actor, action, subject, detail, prev_hash, hash, key_id"
    with keyed.engine.begin() as c:
        for row in saved:
            c.execute(text(f"INSERT INTO audit_log ({cols}) VALUES (:id, :ts_ms, :actor, "
                           ":action, :subject, :detail, :prev_hash, :hash, :key_id)"),
                      dict(row._mapping))

    # a full re-chain without the shelving, the acknowledgement re-attributed, hashed as a
    # database user can (plain SHA-256, no key)
    with keyed.session() as s:
        rows = list(s.execute(select(AuditRecord).order_by(AuditRecord.id)).scalars())
    kept = [r for r in rows if r.action != "alarm.shelve"]
    prev = GENESIS
    with keyed.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log"))
        for i, r in enumerate(kept, start=1):
            actor = "nobody" if r.action == "alarm.acknowledge" else r.actor
            record = {"ts_ms": r.ts_ms, "actor": actor, "action": r.action,
                      "subject": r.subject, "detail": json.loads(r.detail)}
            h = chain_hash(prev, record)
            c.execute(text(f"INSERT INTO audit_log ({cols}) VALUES (:i, :t, :a, :ac, :s, :d, "
                           ":p, :h, NULL)"),
                      {"i": i, "t": r.ts_ms, "a": actor, "ac": r.action, "s": r.subject,
                       "d": canonical(record["detail"]).decode(), "p": prev, "h": h})
            prev = h
    # unkeyed throughout, the chain checks out; the head the gateway anchored does not
    assert verify(database_url, "--anchor", anchor) == 1
    assert "record 5 was anchored" in capsys.readouterr().out


def test_records_rehashed_without_the_key_are_caught(
        keyed: Database, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    history(keyed)
    with keyed.session() as s:
        rows = list(s.execute(select(AuditRecord).order_by(AuditRecord.id)).scalars())
    # record 5 re-attributed and it and record 4 re-hashed as a database user can: keyed records
    # cannot be re-keyed, and an unkeyed one after keyed ones is itself the sign
    prev = rows[2].hash
    with keyed.engine.begin() as c:
        for r in rows[3:]:
            actor = "nobody" if r.id == 5 else r.actor
            record = {"ts_ms": r.ts_ms, "actor": actor, "action": r.action,
                      "subject": r.subject, "detail": json.loads(r.detail)}
            h = chain_hash(prev, record)
            c.execute(text("UPDATE audit_log SET actor = :a, prev_hash = :p, hash = :h, "
                           "key_id = NULL WHERE id = :i"), {"a": actor, "p": prev, "h": h,
                                                             "i": r.id})
            prev = h
    assert verify(database_url) == 1
    assert "record 4 (alarm.shelve by op.liu) is not keyed after keyed records" in \
        capsys.readouterr().out
    # and without the key the keyed records cannot even be checked
    with keyed.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET actor = 'op.liu' WHERE id = 5"))
    assert main(["audit", "verify", "--db", database_url]) == 1


def test_register_rows_history_and_transitions_are_covered(
        keyed: Database, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    eid = history(keyed)
    assert verify(database_url) == 0
    capsys.readouterr()
    # closing an entry behind the gateway's back
    with keyed.engine.begin() as c:
        c.execute(text("UPDATE register_entry SET state = 'closed' WHERE id = :i"), {"i": eid})
    assert verify(database_url) == 1
    assert f"register entry {eid} (closed) differs from what its last audit record" in \
        capsys.readouterr().out
    with keyed.engine.begin() as c:
        c.execute(text("UPDATE register_entry SET state = 'pending_verification' "
                       "WHERE id = :i"), {"i": eid})
    assert verify(database_url) == 0
    capsys.readouterr()
    # alarm history rows and the transitions are sealed; then one of each is tampered with
    with keyed.session.begin() as s:
        history_row(s, "GT101:process", 7, "activate", "HH", 61.5)
    with keyed.session.begin() as s:
        seal = audit.seal(s, 8)
        assert seal is not None and audit.seal(s, 9) is None     # nothing new: no record
    assert verify(database_url) == 0
    capsys.readouterr()
    with keyed.engine.begin() as c:
        c.execute(text("UPDATE alarm_history SET value = 12.0 WHERE alarm_id = 'GT101:process'"))
    assert verify(database_url) == 1
    assert "alarm_history rows 1–1 do not match their seal" in capsys.readouterr().out
    with keyed.engine.begin() as c:
        c.execute(text("UPDATE alarm_history SET value = 61.5 WHERE alarm_id = 'GT101:process'"))
        c.execute(text("DELETE FROM register_transition WHERE action = 'submit'"))
    assert verify(database_url) == 1
    assert "register_transition rows 1–2 do not match their seal (record" in \
        capsys.readouterr().out


async def test_the_gateway_seals_and_anchors_the_head_in_influxdb(
        tmp_path: Path, influx_server: Server, influx_db: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = str(tmp_path / "gw.sqlite3")
    influx = InfluxSettings(url=influx_server.url, database=influx_db, flush_interval_s=0.1)
    settings = Settings(database_url=url, influx=influx, mqtt=MqttSettings(port=1),
                        audit=AuditSettings(key=SecretStr(KEY), seal_every_s=0.2))
    site = as_compiled(small_site(1502))
    running: list[Core] = []
    async with escalating(site, settings, running) as sink, \
            running_core(site, influx, None, [sink]) as run:
        running.append(run.core)
        now = int(time.time() * 1000)
        await run.core.process(ReadingBatch(run.core.table.index(np.array(["G1"])),
                                            np.array([now]), np.array([62.0]),
                                            np.zeros(1, np.uint8)))
        # the alarm's history row is sealed and the head anchored in InfluxDB
        def anchored() -> bool:
            return bool(influx_query(influx_server, influx_db,
                                     'SELECT "id" FROM "audit_anchor"'))
        for _ in range(200):                  # bounded: 20 s
            await run.core.writer.flush()
            if await asyncio.to_thread(anchored):
                break
            await asyncio.sleep(0.1)
    db = Database(url, audit_key=KEY.encode())
    try:
        with db.session() as s:
            actions = [r.action for r in s.scalars(select(AuditRecord))]
        assert "audit.seal" in actions
        env = {"HAZGW_AUDIT__KEY": KEY, "HAZGW_INFLUX__URL": influx_server.url,
               "HAZGW_INFLUX__DATABASE": influx_db}
        mp = pytest.MonkeyPatch()
        for k, v in env.items():
            mp.setenv(k, v)
        try:
            assert verify(url, "--influx-anchors") == 0, capsys.readouterr()
            capsys.readouterr()
            with db.engine.begin() as c:          # the newest record deleted
                c.execute(text("DELETE FROM audit_log WHERE id = (SELECT max(id) FROM "
                               "audit_log)"))
            assert verify(url, "--influx-anchors") == 1
            assert "was anchored" in capsys.readouterr().out
        finally:
            mp.undo()
    finally:
        db.close()


def test_a_long_backlog_is_sealed_in_steps(keyed: Database, database_url: str,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(audit, "SEAL_MAX_ROWS", 2)
    with keyed.session.begin() as s:
        for k in range(5):
            history_row(s, "G1:process", k, "change", "H", 30.0)
    seals = []
    with keyed.session.begin() as s:
        while (r := audit.seal(s, 9)) is not None:
            seals.append(json.loads(r.detail)["alarm_history"])
    assert [(x["from"], x["to"], x["n"]) for x in seals] == [(1, 2, 2), (3, 4, 2), (5, 5, 1)]
    assert verify(database_url) == 0
    capsys.readouterr()
    with keyed.engine.begin() as c:
        c.execute(text("DELETE FROM alarm_history WHERE id = 4"))
    assert verify(database_url) == 1
    assert "alarm_history rows 3–4 do not match their seal" in capsys.readouterr().out


def test_appends_from_many_sessions_at_once_make_one_chain() -> None:
    """Eight threads, each its own session, append at once (instances of a partitioned
    deployment, or one process's enterprise sessions): one intact chain, nothing lost.
    Seen before: 'duplicate key value violates unique constraint "audit_log_pkey"' when
    two transactions read the same newest record. A database of its own: the session's
    must stay empty of tables for the harness test."""
    from tests.conftest import fresh_postgres
    with fresh_postgres() as url:
        appended_at_once(url)


def appended_at_once(url: str) -> None:
    """The body of the test above, on the fresh database ``url``."""
    import threading
    db = Database(url)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    with db.session() as s:
        before = len(s.execute(select(AuditRecord.id)).all())

    def work(i: int) -> None:
        try:
            barrier.wait(10)
            for n in range(10):
                with db.session.begin() as s:
                    audit.append(s, f"inst-{i}", "test.concurrent", f"t/{i}", {"n": n}, n)
        except BaseException as exc:    # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors[:2]
        with db.session() as s:
            checked, problem = audit.verify_log(s)
        assert problem is None
        assert checked == before + 80
    finally:
        db.close()
