"""The audit log in the database: append inside the caller's transaction, verify the chain.

Records are appended with the next id and the hash chain of ``alerting.audit``. Two writers
racing for the same id cannot both commit (primary key), so the chain never forks: the loser's
transaction fails and is retried by its caller.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.audit import GENESIS, Stored, canonical, chain_hash, verify
from gateway.store.models import AuditRecord


def append(session: Session, actor: str, action: str, subject: str, detail: dict[str, Any],
           ts_ms: int) -> AuditRecord:
    """Add one record after the newest (flushed, not committed: the caller's transaction
    decides, so a change and its audit record land together or not at all). ``ts_ms`` is
    the caller's clock: simulated under ``HAZGW_CLOCK``, so the log sorts with the events."""
    last = session.execute(select(AuditRecord).order_by(AuditRecord.id.desc()).limit(1)
                           .with_for_update()).scalar_one_or_none()
    prev = last.hash if last is not None else GENESIS
    ts = ts_ms
    record = {"ts_ms": ts, "actor": actor, "action": action, "subject": subject,
              "detail": detail}
    row = AuditRecord(id=(last.id + 1) if last is not None else 1, ts_ms=ts, actor=actor,
                      action=action, subject=subject, detail=canonical(detail).decode(),
                      prev_hash=prev, hash=chain_hash(prev, record))
    session.add(row)
    session.flush()
    return row


def _stored(row: AuditRecord) -> Stored:
    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = row.detail            # edited into something that is not JSON: still compared
    return Stored(row.id, {"ts_ms": row.ts_ms, "actor": row.actor, "action": row.action,
                           "subject": row.subject, "detail": detail}, row.prev_hash, row.hash)


def verify_log(session: Session) -> tuple[int, str | None]:
    """(records checked, None if intact or what is wrong with the first bad record)."""
    rows = [_stored(r) for r in
            session.execute(select(AuditRecord).order_by(AuditRecord.id)).scalars()]
    return len(rows), verify(rows)
