"""The audit log in the database: append inside the caller's transaction, seal what other
tables appended, anchor the head, verify all of it.

Records are appended with the next id and the hash chain of ``alerting.audit``, keyed when the
database was opened with the site's audit key (``HAZGW_AUDIT__KEY``: then no database user
can rewrite the chain). Two writers racing for the same id cannot both commit (primary key),
so the chain never forks: the loser's transaction fails and is retried by its caller.

What the chain covers beyond its own records:

- **register entries**: each register change's record carries the digest of the entry's row
  as it left it (``row``); an entry changed behind the gateway's back (``UPDATE
  register_entry SET state = 'closed'``) no longer matches its last record;
- **the alarm history and the register's transitions** (append-only tables): ``seal`` appends
  one ``audit.seal`` record over the rows added since the last seal (id range, count and
  digest), every minute while the gateway runs; a sealed row changed, deleted or slipped in
  no longer matches its seal;
- **the head**: ``head`` is (id, hash) of the newest record, which the gateway writes where
  the database's users cannot (``audit_anchor`` in InfluxDB; the daily report), and
  ``verify_log`` checks the chain against such anchors: deleting the newest records or
  rebuilding the chain is caught.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerting.audit import (
    GENESIS,
    Stored,
    canonical,
    chain_hash,
    check_anchors,
    digest,
    key_id,
    verify,
)
from gateway.store.models import AlarmHistory, AuditRecord, RegisterEntry, RegisterTransition

SEALED: dict[str, type[AlarmHistory] | type[RegisterTransition]] = {
    "alarm_history": AlarmHistory, "register_transition": RegisterTransition}


def row_dict(row: Any) -> dict[str, Any]:
    """A row's columns as a dict (what its digest is taken over)."""
    return {c.name: getattr(row, c.name) for c in row.__table__.columns}


def row_digest(row: Any) -> str:
    """The digest of a row as it is now (a register change's record keeps its entry's)."""
    return digest(row_dict(row))


# the advisory lock (one bigint key) that serialises audit appends across instances
AUDIT_APPEND_LOCK = 0x687A_0A0D


def append(session: Session, actor: str, action: str, subject: str, detail: dict[str, Any],
           ts_ms: int) -> AuditRecord:
    """Add one record after the newest (flushed, not committed: the caller's transaction
    decides, so a change and its audit record land together or not at all). ``ts_ms`` is
    the caller's clock: simulated under ``HAZGW_CLOCK``, so the log sorts with the events.

    Appends are serialised: on PostgreSQL by a transaction-scoped advisory lock, taken
    before the newest record is read, so that instances (and sessions of one process)
    appending at once chain one after another. Locking the newest row alone did not: the
    second transaction, once let through, still read the row it had waited on and wrote
    the same id (and with no row yet there is nothing to lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_APPEND_LOCK})
    last = session.execute(select(AuditRecord).order_by(AuditRecord.id.desc()).limit(1)
                           .with_for_update()).scalar_one_or_none()
    prev = last.hash if last is not None else GENESIS
    key: bytes | None = session.info.get("audit_key")
    record = {"ts_ms": ts_ms, "actor": actor, "action": action, "subject": subject,
              "detail": detail}
    row = AuditRecord(id=(last.id + 1) if last is not None else 1, ts_ms=ts_ms, actor=actor,
                      action=action, subject=subject, detail=canonical(detail).decode(),
                      prev_hash=prev, hash=chain_hash(prev, record, key),
                      key_id=key_id(key) if key is not None else None)
    session.add(row)
    session.flush()
    return row


def _last_sealed(session: Session) -> dict[str, int]:
    last = session.execute(select(AuditRecord).where(AuditRecord.action == "audit.seal")
                           .order_by(AuditRecord.id.desc()).limit(1)).scalar_one_or_none()
    if last is None:
        return {}
    return {t: int(r["to"]) for t, r in json.loads(last.detail).items()}


def _range_digest(session: Session, table: str, first: int, last: int) -> tuple[int, str]:
    model = SEALED[table]
    rows = session.execute(select(model).where(model.id >= first, model.id <= last)
                           .order_by(model.id)).scalars().all()
    return len(rows), digest({"rows": [row_dict(r) for r in rows]})


# rows sealed by one record at most: a seal after a long outage or an alarm storm is taken
# in steps (``seal`` returns each), not in one transaction over millions of rows
SEAL_MAX_ROWS = 2000


def seal(session: Session, ts_ms: int) -> AuditRecord | None:
    """One ``audit.seal`` record over the alarm-history and transition rows appended since
    the last seal, at most ``SEAL_MAX_ROWS`` of each (None when there were none)."""
    done = _last_sealed(session)
    detail: dict[str, Any] = {}
    for table, model in SEALED.items():
        first = done.get(table, 0) + 1
        ids = session.execute(select(model.id).where(model.id >= first).order_by(model.id)
                              .limit(SEAL_MAX_ROWS)).scalars().all()
        if not ids:
            detail[table] = {"from": first, "to": first - 1, "n": 0,
                             "digest": digest({"rows": []})}
            continue
        n, d = _range_digest(session, table, first, ids[-1])
        detail[table] = {"from": first, "to": ids[-1], "n": n, "digest": d}
    if all(r["n"] == 0 for r in detail.values()):
        return None
    return append(session, "gateway", "audit.seal", "audit/seal", detail, ts_ms)


def head(session: Session) -> tuple[int, str] | None:
    """(id, hash) of the newest record, or None for an empty log."""
    last = session.execute(select(AuditRecord.id, AuditRecord.hash)
                           .order_by(AuditRecord.id.desc()).limit(1)).first()
    return None if last is None else (int(last[0]), str(last[1]))


def _stored(row: AuditRecord) -> Stored:
    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = row.detail            # edited into something that is not JSON: still compared
    return Stored(row.id, {"ts_ms": row.ts_ms, "actor": row.actor, "action": row.action,
                           "subject": row.subject, "detail": detail}, row.prev_hash, row.hash,
                  row.key_id)


def _check_seals(session: Session, rows: list[Stored]) -> str | None:
    for r in rows:
        if r.record["action"] != "audit.seal" or not isinstance(r.record["detail"], dict):
            continue
        for table, s in r.record["detail"].items():
            if table not in SEALED or s["n"] == 0:
                continue
            n, d = _range_digest(session, table, s["from"], s["to"])
            if (n, d) != (s["n"], s["digest"]):
                return (f"{table} rows {s['from']}–{s['to']} do not match their seal (record "
                        f"{r.id}: {s['n']} rows, now {n}): changed, deleted or inserted")
    return None


def _check_register(session: Session, rows: list[Stored]) -> str | None:
    last: dict[str, tuple[int, str]] = {}
    for r in rows:
        d = r.record["detail"]
        if r.record["subject"].startswith("register/") and isinstance(d, dict) and "row" in d:
            last[r.record["subject"]] = (r.id, d["row"])
    for entry in session.execute(select(RegisterEntry).order_by(RegisterEntry.id)).scalars():
        rec = last.get(f"register/{entry.id}")
        if rec is None:
            continue                     # registered before rows were covered: unchecked
        if row_digest(entry) != rec[1]:
            return (f"register entry {entry.id} ({entry.state}) differs from what its last "
                    f"audit record {rec[0]} says it was: changed behind the gateway's back")
    return None


def verify_log(session: Session, keys: Mapping[str, bytes] | None = None,
               anchors: Iterable[tuple[int, str]] = ()) -> tuple[int, str | None]:
    """(records checked, None if intact or what is wrong first): the chain, the anchors it
    must reach, the sealed history and transition rows, the register entries."""
    rows = [_stored(r) for r in
            session.execute(select(AuditRecord).order_by(AuditRecord.id)).scalars()]
    problem = (verify(rows, keys) or check_anchors({r.id: r.hash for r in rows}, anchors)
               or _check_seals(session, rows) or _check_register(session, rows))
    return len(rows), problem
