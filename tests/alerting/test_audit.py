from __future__ import annotations

from alerting.audit import GENESIS, Stored, chain_hash, verify


def chain(n: int) -> list[Stored]:
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        rec = {"action": "a", "actor": "u", "n": i}
        h = chain_hash(prev, rec)
        rows.append(Stored(i, rec, prev, h))
        prev = h
    return rows


def test_intact_chain_and_each_kind_of_tampering_is_named() -> None:
    rows = chain(5)
    assert verify(rows) is None
    edited = [*rows[:2], Stored(3, {**rows[2].record, "n": 99}, rows[2].prev_hash,
                                rows[2].hash), *rows[3:]]
    assert verify(edited) == "record 3 (a by u) was altered: its content no longer matches " \
                             "its hash"
    assert verify(rows[:2] + rows[3:]) == "record 3 is missing (deleted?): the log jumps " \
                                          "from 2 to 4"
    rehashed = Stored(3, {**rows[2].record, "n": 99}, rows[2].prev_hash,
                      chain_hash(rows[2].prev_hash, {**rows[2].record, "n": 99}))
    assert verify([*rows[:2], rehashed, *rows[3:]]) == \
        "record 4 (a by u): prev_hash does not match record 3 (changed or removed)"
