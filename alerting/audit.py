"""The audit log's hash chain, as pure functions.

Each record carries the hash of the one before it: hash = SHA-256 of the previous hash and the
record's canonical JSON (sorted keys, no spaces, UTF-8), or, with the site's audit key, an
HMAC-SHA256 under that key, which no database user can compute. Record ids run 1, 2, 3 …
without gaps. Editing a record breaks its own hash; deleting one leaves a gap in the ids or a
``prev_hash`` that no longer matches; editing a record and re-hashing it breaks the next
record's ``prev_hash``; re-hashing the rest of the chain needs the key, and a record without
one after keyed records is itself the sign of a rewrite. What the chain alone cannot show —
the newest records deleted, or the whole chain rebuilt — the anchors show: (id, hash) of the
head, kept where the database's users cannot write (InfluxDB, the daily report, a retained
MQTT message). Altering alarm thresholds or monitoring data is an offence under PRC Criminal
Law art. 134-1, so the log must show any tampering, and say where.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record is hashed as."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def key_id(key: bytes) -> str:
    """Which key keyed a record (the first 8 hex digits of its SHA-256): names it only."""
    return hashlib.sha256(key).hexdigest()[:8]


def chain_hash(prev_hash: str, record: Mapping[str, Any], key: bytes | None = None) -> str:
    """The hash of ``record`` following ``prev_hash`` (keyed: an HMAC under ``key``)."""
    msg = prev_hash.encode() + b"\n" + canonical(record)
    if key is None:
        return hashlib.sha256(msg).hexdigest()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def digest(row: Mapping[str, Any]) -> str:
    """The digest of a row of another table, kept in the audit record that changed it."""
    return hashlib.sha256(canonical(row)).hexdigest()


@dataclass(frozen=True)
class Stored:
    """One audit record as read back: its id, content, the two hashes stored with it, and
    the id of the key that keyed it (None: unkeyed)."""

    id: int
    record: Mapping[str, Any]
    prev_hash: str
    hash: str
    key_id: str | None = None


def verify(rows: Iterable[Stored], keys: Mapping[str, bytes] | None = None) -> str | None:
    """None when the chain is intact, else what is wrong with the first bad record.
    ``keys``: key id → key, for the keyed records."""
    expected_id, prev, keyed = 1, GENESIS, False
    for row in rows:
        what = f"record {row.id} ({row.record.get('action')} by {row.record.get('actor')})"
        if row.id != expected_id:
            return (f"record {expected_id} is missing (deleted?): the log jumps from "
                    f"{expected_id - 1} to {row.id}")
        if row.prev_hash != prev:
            return f"{what}: prev_hash does not match record {row.id - 1} (changed or removed)"
        key = None
        if row.key_id is not None:
            key = (keys or {}).get(row.key_id)
            if key is None:
                return (f"{what} is keyed with key {row.key_id}, which was not given "
                        "(HAZGW_AUDIT__KEY): it cannot be checked")
            keyed = True
        elif keyed:
            return (f"{what} is not keyed after keyed records: the chain was rewritten from "
                    "here by someone without the key")
        if chain_hash(prev, row.record, key) != row.hash:
            return f"{what} was altered: its content no longer matches its hash"
        expected_id, prev = row.id + 1, row.hash
    return None


def check_anchors(heads: Mapping[int, str], anchors: Iterable[tuple[int, str]]) -> str | None:
    """None when every anchor (id, hash) is a record of the chain with that hash; else the
    first that is not: the log was truncated below it or rebuilt."""
    for aid, ahash in sorted(anchors):
        if aid not in heads:
            return (f"record {aid} was anchored (hash {ahash[:12]}…) and is not in the log: "
                    "the newest records were deleted")
        if heads[aid] != ahash:
            return (f"record {aid} does not match its anchor (hash {heads[aid][:12]}… against "
                    f"{ahash[:12]}…): the log was rebuilt")
    return None
