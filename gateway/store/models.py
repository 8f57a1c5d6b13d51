"""The relational store (SQLAlchemy 2): hazard register and its transitions, the audit log,
alarms and their escalation steps, the notification outbox.

A SQLite file is the embedded default; PostgreSQL is used by URL. The schema is created and
upgraded by Alembic (``gateway/migrations``), never by ``create_all``, so that a production
database moves through the same migrations as a test one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base of every table."""


class AuditRecord(Base):
    """One append-only audit record; ``detail`` holds the canonical JSON that was hashed."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(8))   # null: an unkeyed link


class RegisterEntry(Base):
    """A hazard register entry (隐患) with its five in place (五到位)."""

    __tablename__ = "register_entry"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise: Mapped[str] = mapped_column(String(64), index=True)
    hazard_source: Mapped[str] = mapped_column(String(64), index=True)
    point: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    level: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32), index=True)
    measures: Mapped[str | None] = mapped_column(Text)
    funds_cny: Mapped[float | None] = mapped_column(Float)
    responsible_person: Mapped[str | None] = mapped_column(String(128))
    deadline_ms: Mapped[int | None] = mapped_column(BigInteger)
    contingency_plan: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text, default="{}")   # JSON: alarm ids, snapshot
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(128))
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger)
    listed_ms: Mapped[int | None] = mapped_column(BigInteger)     # 挂牌督办 by a regulator
    listed_by: Mapped[str | None] = mapped_column(String(128))


class RegisterTransition(Base):
    """One step of an entry through its closed loop."""

    __tablename__ = "register_transition"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("register_entry.id"), index=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    verifier: Mapped[str | None] = mapped_column(String(128))


class Alarm(Base):
    """One annunciated occurrence of an alarm, as long as escalation needs to follow it."""

    __tablename__ = "alarm"
    __table_args__ = (UniqueConstraint("enterprise", "alarm_id", "annunciated_ms",
                                       name="uq_alarm_occurrence"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # whose (alarm ids are unique within an enterprise only: many share one database);
    # '' on rows written before the column existed, read as the reader's own
    enterprise: Mapped[str] = mapped_column(String(32), server_default="")
    alarm_id: Mapped[str] = mapped_column(String(128))
    annunciated_ms: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(64))
    point: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)
    level_name: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float)
    limit: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(32))
    handled_ms: Mapped[int | None] = mapped_column(BigInteger, index=True)
    handled_by: Mapped[str | None] = mapped_column(String(128))
    # ack (a person acknowledged it), clear (it returned to normal by itself), shelve,
    # remove, ...: the report tells them apart
    handled_event: Mapped[str | None] = mapped_column(String(32))


class AlarmHistory(Base):
    """One lifecycle event of an alarm (every transition: who, when, why)."""

    __tablename__ = "alarm_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise: Mapped[str] = mapped_column(String(32), server_default="")
    alarm_id: Mapped[str] = mapped_column(String(128), index=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    level_name: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)
    limit: Mapped[float | None] = mapped_column(Float)
    user: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)


class ShiftNote(Base):
    """A shift handover (交接班): who hands over to whom, the note, and the alarms that stood
    at that moment (JSON list of ``{alarm_id, state, level_name, priority}``)."""

    __tablename__ = "shift_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise: Mapped[str] = mapped_column(String(32), index=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    author: Mapped[str] = mapped_column(String(128))
    on_duty: Mapped[str] = mapped_column(String(500))
    taking_over: Mapped[str | None] = mapped_column(String(500))
    note: Mapped[str] = mapped_column(Text)
    standing: Mapped[str] = mapped_column(Text)


class Escalation(Base):
    """A step of an alarm's escalation that fired (at most once: unique per alarm and step)."""

    __tablename__ = "escalation"
    __table_args__ = (UniqueConstraint("alarm_row", "step", name="uq_escalation_step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alarm_row: Mapped[int] = mapped_column(ForeignKey("alarm.id"))
    step: Mapped[int] = mapped_column(Integer)
    roles: Mapped[str] = mapped_column(String(128))
    fired_ms: Mapped[int] = mapped_column(BigInteger)


class Outbox(Base):
    """A notification waiting for delivery, or delivered (at least once; ``key`` makes a
    second copy recognisable to the receiver and a second enqueue impossible)."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("key", name="uq_outbox_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(256))
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(512))
    payload: Mapped[str] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_ms: Mapped[int] = mapped_column(BigInteger)
    delivered_ms: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # given up: a permanent refusal, or MAX_ATTEMPTS failures (not retried, counted, said)
    failed_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    # the claim of the instance sending it now (gateway.alarms.outbox.Delivery._claim)
    claimed_by: Mapped[str | None] = mapped_column(String(64))


class ClusterInstance(Base):
    """A gateway instance of a partitioned deployment and the key of the advisory lock it
    holds while it lives (``gateway.cluster.lease``: alive means holding it)."""

    __tablename__ = "cluster_instance"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    lock_key: Mapped[int] = mapped_column(Integer)
    started_ms: Mapped[int] = mapped_column(BigInteger)


class PartitionLease(Base):
    """Who owns a partition now and its epoch: +1 at every change of owner, so that what
    a former owner still tries to write is recognised as stale and refused."""

    __tablename__ = "partition_lease"
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(BigInteger)
    since_ms: Mapped[int] = mapped_column(BigInteger)


class DeliveryAttempt(Base):
    """Every attempt to deliver an outbox message, successful or not."""

    __tablename__ = "delivery_attempt"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)


class ThresholdSnapshot(Base):
    """A point's alarm settings as the gateway last ran them (JSON, canonical)."""

    __tablename__ = "threshold_snapshot"
    enterprise: Mapped[str] = mapped_column(String(64), primary_key=True)
    point: Mapped[str] = mapped_column(String(64), primary_key=True)
    settings: Mapped[str] = mapped_column(Text)


def as_dict(row: Base) -> dict[str, Any]:
    """A stored row's columns by name (what the API returns)."""
    return {c.name: getattr(row, c.name) for c in row.__table__.columns}


def ours(column: Any, enterprise: str) -> Any:
    """A filter on the rows of ``enterprise`` (and on those written before rows carried
    their enterprise: a database of one enterprise, upgraded)."""
    return column.in_((enterprise, "")) if enterprise else column == ""


def normalise_url(url: str) -> str:
    """``postgresql://`` → the psycopg 3 driver; a bare path → a SQLite file."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    return url


# the advisory lock (one bigint key) that lets one process at a time migrate a database
MIGRATION_LOCK = 0x687A_0D0B


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema. On PostgreSQL one process at a
    time, under an advisory lock held on a session of its own: instances started together
    on a fresh database raced to create the same tables ('duplicate key value violates
    unique constraint "pg_type_typname_nsp_index"') and one of them stopped."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url))
    if not normalise_url(url).startswith("postgresql"):
        command.upgrade(cfg, "head")
        return
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            try:
                command.upgrade(cfg, "head")
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
    finally:
        engine.dispose()


_MIGRATING = threading.Lock()


class Database:
    """An engine and its sessions, on a migrated database."""

    def __init__(self, url: str, upgrade: bool = True, audit_key: bytes | None = None) -> None:
        self.url = normalise_url(url)
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if upgrade:
            # one migration at a time in a process: alembic's context is not thread-safe,
            # and the API and the escalation open their databases concurrently
            with _MIGRATING:
                migrate(self.url)
        self.engine: Engine = create_engine(self.url)
        # every session carries the audit key: gateway.store.audit keys the records with it
        self.session = sessionmaker(self.engine, expire_on_commit=False,
                                    info={"audit_key": audit_key})

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()
