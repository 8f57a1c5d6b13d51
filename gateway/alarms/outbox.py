"""The durable notification outbox: messages are written in the same transaction as the
escalation step that caused them, then delivered by the channel's notifier, retried with
backoff until they go through, every attempt recorded.

Delivery is at least once: a gateway killed after sending but before recording the success
sends again after its restart, with the same idempotency key, by which receivers drop the
copy (webhook ``Idempotency-Key`` header, MQTT ``key`` field, e-mail ``Message-ID``).

Several gateway instances may share one database: each claims due messages before sending
them (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, then a conditional update that
makes a row its own for ``CLAIM_LEASE_MS``), so each message goes out from one instance. A
claim that is never recorded (its instance died mid-send) is due again when the lease ends;
an instance that starts again under the same name takes back its own claims at once.

Regulator feed, JSON v1 (the payload of every channel)::

    {"v": 1, "key": "GT101:process@1800000000000/step3/mqtt:reg/feed",
     "enterprise": "91320582MA1W3K4X5R",
     "hazard_source": {"code": "lpg_farm", "level": "二级"},
     "point": "GT101", "value": 55.2, "limit": 50.0, "alarm_level": "HH", "priority": 1,
     "warning_colour": "red",                       # 红橙黄蓝 by priority 1..4
     "annunciated_ms": 1800000000000, "escalated_ms": 1800001800000,
     "step": 3, "roles": ["regulator"]}

An emergency alarm shelved or taken out of service is told to every role of its policy at
once: ``"step": -1`` with ``"kind": "shelved"`` (or ``"out_of_service"``) and ``"by"``, the
person who did it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from alerting.escalation import WARNING_COLOUR, Contacts
from edge.clock import WALL, Clock
from gateway.store.models import Database, DeliveryAttempt, Outbox

log = logging.getLogger(__name__)


class PermanentDeliveryError(Exception):
    """The receiving side refused in a way no retry can change (a 4xx, a refused recipient,
    an unusable header): the message goes to the failed state."""


# failed attempts after which a message is given up (with backoff to 300 s: ~8 hours)
MAX_ATTEMPTS = 100
CLAIM_ROWS = 20             # claimed at a time: what one instance sends before it claims more
CLAIM_LEASE_MS = 120_000    # a claim not recorded by then is another instance's to take


class Notifier(Protocol):
    """One delivery channel; ``send`` raises when the message did not go through."""

    async def send(self, target: str, key: str, payload: bytes) -> None: ...

    def close(self) -> None:
        """Release what the channel holds open (connections, threads)."""


def feed_message(*, key: str, enterprise: str, source: str, source_level: str | None,
                 point: str | None, value: float | None, limit: float | None,
                 alarm_level: str, priority: int, annunciated_ms: int, escalated_ms: int,
                 step: int, roles: list[str]) -> dict[str, Any]:
    """One regulator-feed message (format in the module docstring)."""
    return {"v": 1, "key": key, "enterprise": enterprise,
            "hazard_source": {"code": source, "level": source_level},
            "point": point, "value": value, "limit": limit, "alarm_level": alarm_level,
            "priority": priority, "warning_colour": WARNING_COLOUR.get(priority, "blue"),
            "annunciated_ms": annunciated_ms, "escalated_ms": escalated_ms, "step": step,
            "roles": roles}


def enqueue(s: Session, key: str, channel: str, target: str, payload: dict[str, Any],
            now_ms: int) -> bool:
    """Add a message unless one with ``key`` exists; whether it was added."""
    if s.execute(select(Outbox.id).where(Outbox.key == key)).first() is not None:
        return False
    s.add(Outbox(key=key, channel=channel, target=target, payload=orjson.dumps(payload).decode(),
                 created_ms=now_ms, attempts=0, next_attempt_ms=now_ms))
    return True


def enqueue_for_roles(s: Session, contacts: Contacts, source: str, roles: list[str],
                      base_key: str, message: dict[str, Any], now_ms: int) -> int:
    """One message per contact of each role; returns how many were added."""
    n = 0
    for role in roles:
        for c in contacts.of(source, role):  # type: ignore[arg-type]
            key = f"{base_key}/{c.channel}:{c.target}"
            n += enqueue(s, key, c.channel, c.target, {**message, "key": key}, now_ms)
    return n


def failed_count(db: Database) -> int:
    """Notifications given up for good (in the failed state), since the outbox began."""
    with db.session() as s:
        return int(s.execute(select(func.count(Outbox.id))
                             .where(Outbox.failed_ms.is_not(None))).scalar_one())


class Delivery:
    """Delivers due outbox messages through the notifiers of their channels."""

    def __init__(self, db: Database, notifiers: Mapping[str, Notifier],
                 max_backoff_s: float = 300.0, clock: Clock = WALL,
                 instance: str = "hazgw-core") -> None:
        self.db = db
        self.instance = instance[:64]       # the MQTT client id: unique per instance
        self._reclaimed = False
        self.clock = clock
        self.notifiers = notifiers
        self.max_backoff_s = max_backoff_s
        self.delivered = 0
        self.failed_attempts = 0
        self.failed_messages = 0        # given up (permanently refused, or MAX_ATTEMPTS)

    def _claim(self, now_ms: int) -> list[Outbox]:
        """Due messages made this instance's for ``CLAIM_LEASE_MS``, oldest first."""
        open_ = (Outbox.delivered_ms.is_(None), Outbox.failed_ms.is_(None))
        due = (*open_, Outbox.next_attempt_ms <= now_ms)
        lease_end = now_ms + CLAIM_LEASE_MS
        with self.db.session.begin() as s:
            if not self._reclaimed:     # ours from before a restart: due now, not in 2 min
                s.execute(update(Outbox).where(*open_, Outbox.claimed_by == self.instance)
                          .values(next_attempt_ms=now_ms, claimed_by=None))
                self._reclaimed = True
            ids = list(s.execute(select(Outbox.id).where(*due).order_by(Outbox.id)
                                 .limit(CLAIM_ROWS).with_for_update(skip_locked=True))
                       .scalars())
            if not ids:
                return []
            # the condition again: a row another instance claimed since (SQLite has no row
            # locks; on PostgreSQL this is what the lock already ensured) stays its
            s.execute(update(Outbox).where(Outbox.id.in_(ids), *due)
                      .values(claimed_by=self.instance, next_attempt_ms=lease_end))
            return list(s.execute(select(Outbox).where(
                Outbox.id.in_(ids), Outbox.claimed_by == self.instance,
                Outbox.next_attempt_ms == lease_end).order_by(Outbox.id)).scalars())

    def _release(self, ids: list[int]) -> None:
        with self.db.session.begin() as s:
            s.execute(update(Outbox).where(Outbox.id.in_(ids),
                                           Outbox.claimed_by == self.instance)
                      .values(claimed_by=None, next_attempt_ms=self.clock.now_ms()))

    def _record(self, msg_id: int, ok: bool, error: str | None, now_ms: int,
                permanent: bool = False) -> bool:
        """Record an attempt; whether the message is now given up."""
        with self.db.session.begin() as s:
            row = s.get(Outbox, msg_id)
            assert row is not None
            row.attempts += 1
            row.claimed_by = None
            s.add(DeliveryAttempt(outbox_id=msg_id, ts_ms=now_ms, ok=ok, error=error))
            if ok:
                row.delivered_ms = now_ms
                row.last_error = None
                return False
            row.last_error = error
            if permanent or row.attempts >= MAX_ATTEMPTS:
                row.failed_ms = now_ms
                return True
            backoff = min(2 ** (row.attempts - 1), self.max_backoff_s)
            row.next_attempt_ms = now_ms + int(backoff * 1000)
            return False

    async def run_once(self, now_ms: int | None = None) -> int:
        """Try every due message once; returns how many were delivered."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        done = 0
        claimed = await asyncio.to_thread(self._claim, now)
        for k, msg in enumerate(claimed):
            if self.clock.now_ms() > now + CLAIM_LEASE_MS // 2:
                # slow sends: hand the rest back before the lease could pass to another
                # instance while this one still sends
                await asyncio.to_thread(self._release, [m.id for m in claimed[k:]])
                break
            notifier = self.notifiers.get(msg.channel)
            error: str | None = None
            permanent = False
            if notifier is None:
                error, permanent = f"no notifier for channel {msg.channel!r}", True
            else:
                try:
                    await notifier.send(msg.target, msg.key, msg.payload.encode())
                except PermanentDeliveryError as exc:
                    error, permanent = f"refused for good: {exc}", True
                except Exception as exc:   # any other failure is recorded and retried
                    error = f"{type(exc).__name__}: {exc}"
            gave_up = await asyncio.to_thread(self._record, msg.id, error is None, error, now,
                                              permanent)
            if error is None:
                done += 1
                self.delivered += 1
            elif gave_up:
                self.failed_attempts += 1
                self.failed_messages += 1
                log.error("notification %s via %s to %s given up after %d attempt(s): %s "
                          "(failed: see the outbox)", msg.key, msg.channel, msg.target,
                          msg.attempts + 1, error)
            else:
                self.failed_attempts += 1
                log.warning("notification %s via %s to %s failed (attempt %d): %s", msg.key,
                            msg.channel, msg.target, msg.attempts + 1, error)
        return done
