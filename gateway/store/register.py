"""The hazard register in the database: create entries, walk them through the closed loop
(rules in ``alerting.register``), list what is overdue or under supervised listing. Every
change is recorded as a transition and in the audit log, in the same transaction."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.register import (
    FIVE,
    Action,
    Entry,
    Five,
    Level,
    RegisterError,
    Source,
    transition,
)
from edge.clock import WALL, Clock
from gateway.store import audit as auditlog
from gateway.store.models import Database, RegisterEntry, RegisterTransition

LEVELS: tuple[Level, ...] = ("general", "major")
SOURCES: tuple[Source, ...] = ("alarm_duration", "alarm_recurrence", "integrity", "inspection")


def _five(row: RegisterEntry) -> Five:
    return Five(**{f: getattr(row, f) for f in FIVE})


def _entry(row: RegisterEntry) -> Entry:
    return Entry(state=row.state, level=row.level, five=_five(row))  # type: ignore[arg-type]


def is_supervised(row: RegisterEntry, now_ms: int) -> bool:
    """Under supervised listing (挂牌督办): open and major, overdue, or listed by a regulator —
    the one definition the report, the API and the console use."""
    return row.state != "closed" and (row.listed_ms is not None
                                      or _entry(row).supervised(now_ms))


class Register:
    """Register operations; each runs in its own transaction."""

    def __init__(self, db: Database, clock: Clock = WALL) -> None:
        self.db = db
        self.clock = clock

    def _now(self, now_ms: int | None) -> int:
        return self.clock.now_ms() if now_ms is None else now_ms

    def create(self, *, enterprise: str, hazard_source: str, title: str, level: Level,
               source: Source, actor: str, point: str | None = None, description: str = "",
               five: Five | None = None, evidence: dict[str, Any] | None = None,
               now_ms: int | None = None) -> int:
        """Register a hazard (登记); returns its id."""
        if level not in LEVELS:
            raise RegisterError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
        if source not in SOURCES:
            raise RegisterError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if not title.strip():
            raise RegisterError("title must not be empty")
        now = self._now(now_ms)
        with self.db.session.begin() as s:
            row = RegisterEntry(
                enterprise=enterprise, hazard_source=hazard_source, point=point, title=title,
                description=description, level=level, source=source, state="registered",
                evidence=json.dumps(evidence or {}, sort_keys=True), created_ms=now,
                created_by=actor, updated_ms=now, closed_ms=None,
                **asdict(five or Five()))
            s.add(row)
            s.flush()
            auditlog.append(s, actor, "register.create", f"register/{row.id}",
                            {"level": level, "source": source, "title": title,
                             "hazard_source": hazard_source, "point": point,
                             "five": asdict(five or Five()),
                             "row": auditlog.row_digest(row)}, now)
            return row.id

    def transition(self, entry_id: int, action: Action, actor: str, *,
                   five: Five | None = None, verifier: str | None = None,
                   comment: str | None = None, now_ms: int | None = None) -> str:
        """Apply ``action`` (RegisterError when the rules refuse it); returns the new state."""
        now = self._now(now_ms)
        with self.db.session.begin() as s:
            row = self._get(s, entry_id)
            before = _entry(row)
            after = transition(before, action, five=five, verifier=verifier, comment=comment)
            for f in FIVE:
                setattr(row, f, getattr(after.five, f))
            row.state = after.state
            row.updated_ms = now
            if after.state == "closed":
                row.closed_ms = now
            # the actor is who did it (the authenticated user), the verifier beside it
            s.add(RegisterTransition(entry_id=entry_id, ts_ms=now, actor=actor,
                                     verifier=verifier, action=action,
                                     from_state=before.state, to_state=after.state,
                                     comment=comment))
            detail: dict[str, Any] = {"from": before.state, "to": after.state}
            if before.five != after.five:
                detail["old"] = asdict(before.five)
                detail["new"] = asdict(after.five)
            if verifier or comment:
                detail.update({"verifier": verifier, "comment": comment})
            s.flush()
            detail["row"] = auditlog.row_digest(row)     # the entry as this change left it
            auditlog.append(s, actor, f"register.{action}", f"register/{entry_id}", detail,
                            now)
            return after.state

    @staticmethod
    def _get(s: Session, entry_id: int) -> RegisterEntry:
        row = s.get(RegisterEntry, entry_id, with_for_update=True)
        if row is None:
            raise RegisterError(f"no register entry {entry_id}")
        return row

    def get(self, entry_id: int) -> RegisterEntry:
        """One entry (RegisterError when there is none)."""
        with self.db.session() as s:
            return self._get(s, entry_id)

    def history(self, entry_id: int) -> list[RegisterTransition]:
        """The entry's transitions, oldest first."""
        with self.db.session() as s:
            return list(s.execute(select(RegisterTransition)
                                  .where(RegisterTransition.entry_id == entry_id)
                                  .order_by(RegisterTransition.id)).scalars())

    def all_entries(self) -> list[RegisterEntry]:
        """Every entry, oldest first."""
        with self.db.session() as s:
            return list(s.execute(select(RegisterEntry).order_by(RegisterEntry.id)).scalars())

    def open_entries(self) -> list[RegisterEntry]:
        """Entries not closed, oldest first."""
        with self.db.session() as s:
            return list(s.execute(select(RegisterEntry).where(RegisterEntry.state != "closed")
                                  .order_by(RegisterEntry.id)).scalars())

    def overdue(self, now_ms: int | None = None) -> list[RegisterEntry]:
        """Open entries past their deadline."""
        now = self._now(now_ms)
        return [r for r in self.open_entries() if _entry(r).overdue(now)]

    def supervised(self, now_ms: int | None = None) -> list[RegisterEntry]:
        """Open entries under supervised listing (挂牌督办): major, overdue, or listed by a
        regulator."""
        now = self._now(now_ms)
        return [r for r in self.open_entries() if is_supervised(r, now)]

    def list_for_supervision(self, entry_id: int, actor: str,
                             now_ms: int | None = None) -> None:
        """A regulator puts an open entry under supervised listing."""
        now = self._now(now_ms)
        with self.db.session.begin() as s:
            row = self._get(s, entry_id)
            if row.state == "closed":
                raise RegisterError(f"entry {entry_id} is closed: nothing to supervise")
            if row.listed_ms is None:
                row.listed_ms, row.listed_by = now, actor
                s.flush()
                auditlog.append(s, actor, "register.list_supervised", f"register/{entry_id}",
                                {"state": row.state, "row": auditlog.row_digest(row)}, now)

    def statistics(self) -> list[dict[str, Any]]:
        """Entry counts by hazard source, level and state."""
        counts: dict[tuple[str, str, str], int] = {}
        with self.db.session() as s:
            for src, lvl, st in s.execute(select(RegisterEntry.hazard_source,
                                                 RegisterEntry.level, RegisterEntry.state)):
                counts[(src, lvl, st)] = counts.get((src, lvl, st), 0) + 1
        return [{"hazard_source": k[0], "level": k[1], "state": k[2], "count": v}
                for k, v in sorted(counts.items())]
