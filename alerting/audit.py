"""The audit log's hash chain, as pure functions.

Each record carries the hash of the one before it: hash = SHA-256 of the previous hash and the
record's canonical JSON (sorted keys, no spaces, UTF-8). Record ids run 1, 2, 3 … without
gaps. Editing a record breaks its own hash; deleting one leaves a gap in the ids or a
``prev_hash`` that no longer matches; editing a record and re-hashing it breaks the next
record's ``prev_hash``. Altering alarm thresholds or monitoring data is an offence under PRC
Criminal Law art. 134-1, so the log must show any tampering, and say where.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record is hashed as."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def chain_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    """The hash of ``record`` following ``prev_hash``."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(record)).hexdigest()


@dataclass(frozen=True)
class Stored:
    """One audit record as read back: its id, content, and the two hashes stored with it."""

    id: int
    record: Mapping[str, Any]
    prev_hash: str
    hash: str


def verify(rows: Iterable[Stored]) -> str | None:
    """None when the chain is intact, else what is wrong with the first bad record."""
    expected_id, prev = 1, GENESIS
    for row in rows:
        what = f"record {row.id} ({row.record.get('action')} by {row.record.get('actor')})"
        if row.id != expected_id:
            return (f"record {expected_id} is missing (deleted?): the log jumps from "
                    f"{expected_id - 1} to {row.id}")
        if row.prev_hash != prev:
            return f"{what}: prev_hash does not match record {row.id - 1} (changed or removed)"
        if chain_hash(prev, row.record) != row.hash:
            return f"{what} was altered: its content no longer matches its hash"
        expected_id, prev = row.id + 1, row.hash
    return None
