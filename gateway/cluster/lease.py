"""Partitions with one owner each: PostgreSQL advisory locks plus an epoch.

Every instance holds, on one database session of its own, an advisory lock that says it is
alive (``LIVE``, keyed by its name) and one per partition it owns (``PARTITION``). A
session that ends (the process killed, its connection lost) releases them at once: that is
the failure detector, PostgreSQL's, with nothing to time out. Which partitions an instance
should own is decided by rendezvous hashing over the instances alive, so that an instance
that joins or leaves moves only its share; an instance takes a partition when the lock is
free and gives one up (after draining it) when another live instance should have it.

Each change of owner adds one to the partition's epoch (``partition_lease``); the owner
checks its epoch before anything a stale owner must not do (``holds``): an instance that
lost its session while it still ran sees its epoch gone and stops.

Blocking calls on one connection: the runtime calls them from a worker thread, one at a
time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from gateway.store.models import Database

log = logging.getLogger(__name__)

LIVE = 0x687A0001           # advisory lock classes (the two-int4 form): instances alive
PARTITION = 0x687A0002      # and partitions owned


class LeaseError(RuntimeError):
    """The lease database is not PostgreSQL, or the instance's name is taken."""


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") & 0x7FFFFFFF


def rendezvous(partition: int, instances: list[str]) -> str:
    """The instance that should own ``partition`` among ``instances`` (highest random
    weight: one partition moves when one instance joins or leaves)."""
    return max(instances, key=lambda i: hashlib.sha256(f"{partition}/{i}".encode()).digest())


@dataclass
class Step:
    """What one lease step found: partitions newly owned (with their epochs), partitions
    to give up (drain them, then ``release``), and the instances alive."""

    gained: dict[int, int] = field(default_factory=dict)
    give_up: list[int] = field(default_factory=list)
    alive: list[str] = field(default_factory=list)


class PartitionLeases:
    """One instance's leases on ``partitions`` partitions."""

    def __init__(self, url: str, instance: str, partitions: int) -> None:
        self.instance = instance
        self.partitions = partitions
        self.owned: dict[int, int] = {}             # partition -> epoch
        self._db = Database(url)
        if self._db.engine.dialect.name != "postgresql":
            self._db.close()
            raise LeaseError(f"partitioned instances need PostgreSQL (advisory locks); "
                             f"the database is {self._db.engine.dialect.name}")
        self._conn: Connection = self._db.engine.connect().execution_options(
            isolation_level="AUTOCOMMIT")
        got = self._conn.execute(text("SELECT pg_try_advisory_lock(:c, :k)"),
                                 {"c": LIVE, "k": _key(instance)}).scalar()
        if not got:
            self.close()
            raise LeaseError(f"instance name {instance!r} is in use by a live instance")
        self._conn.execute(text(
            "INSERT INTO cluster_instance (name, lock_key, started_ms) VALUES (:n, :k, :t) "
            "ON CONFLICT (name) DO UPDATE SET lock_key = :k, started_ms = :t"),
            {"n": instance, "k": _key(instance), "t": int(time.time() * 1000)})

    def alive(self) -> list[str]:
        """Instances whose liveness lock is held now."""
        rows = self._conn.execute(text(
            "SELECT DISTINCT i.name FROM cluster_instance i JOIN pg_locks l ON l.locktype = "
            "'advisory' AND l.classid = :c AND l.objid = i.lock_key AND l.objsubid = 2 "
            "AND l.granted ORDER BY i.name"), {"c": LIVE}).scalars()
        return list(rows)

    def step(self) -> Step:
        """Take the free partitions this instance should own; say which to give up."""
        out = Step(alive=self.alive())
        if self.instance not in out.alive:      # our session is not the one holding it
            raise LeaseError("this instance's liveness lock is gone")
        want = {p for p in range(self.partitions)
                if rendezvous(p, out.alive) == self.instance}
        out.give_up = sorted(set(self.owned) - want)
        for p in sorted(want - set(self.owned)):
            if self._conn.execute(text("SELECT pg_try_advisory_lock(:c, :p)"),
                                  {"c": PARTITION, "p": p}).scalar():
                epoch = int(self._conn.execute(text(
                    "INSERT INTO partition_lease (partition, owner, epoch, since_ms) "
                    "VALUES (:p, :o, 1, :t) ON CONFLICT (partition) DO UPDATE SET "
                    "owner = :o, epoch = partition_lease.epoch + 1, since_ms = :t "
                    "RETURNING epoch"),
                    {"p": p, "o": self.instance, "t": int(time.time() * 1000)}).scalar_one())
                self.owned[p] = out.gained[p] = epoch
        return out

    def holds(self, partition: int) -> bool:
        """Whether this instance still owns ``partition`` at the epoch it took it with."""
        epoch = self.owned.get(partition)
        if epoch is None:
            return False
        row = self._conn.execute(text(
            "SELECT owner, epoch FROM partition_lease WHERE partition = :p"),
            {"p": partition}).one_or_none()
        return row is not None and row[0] == self.instance and int(row[1]) == epoch

    def release(self, partition: int) -> None:
        """Give up a partition (drained first by the caller)."""
        if self.owned.pop(partition, None) is not None:
            self._conn.execute(text("SELECT pg_advisory_unlock(:c, :p)"),
                               {"c": PARTITION, "p": partition})

    def close(self) -> None:
        """End the session: every lock goes with it."""
        self.owned.clear()
        with contextlib.suppress(AttributeError):     # closed before it was opened
            self._conn.close()
        self._db.close()
