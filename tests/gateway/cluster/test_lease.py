"""Partition leases on the machine's PostgreSQL: one owner per partition, shares moving
when instances join and leave, epochs that fence a former owner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cluster.lease import LeaseError, PartitionLeases, rendezvous
from tests.conftest import fresh_postgres

N = 8


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


def test_one_owner_each_and_shares_that_move(pg: str) -> None:
    a = PartitionLeases(pg, "a", N)
    try:
        assert set(a.step().gained) == set(range(N))          # alone: every partition
        b = PartitionLeases(pg, "b", N)
        try:
            first = b.step()
            assert not first.gained                           # a still holds them all
            share_b = {p for p in range(N) if rendezvous(p, ["a", "b"]) == "b"}
            assert 0 < len(share_b) < N
            step_a = a.step()
            assert set(step_a.give_up) == share_b and step_a.alive == ["a", "b"]
            epochs = {p: a.owned[p] for p in share_b}
            for p in step_a.give_up:
                a.release(p)
            assert set(b.step().gained) == share_b
            assert all(b.owned[p] == epochs[p] + 1 for p in share_b)
            assert not any(a.holds(p) for p in share_b)       # fenced: the epoch moved on
            assert all(a.holds(p) for p in set(range(N)) - share_b)
            assert not set(a.owned) & set(b.owned)
        finally:
            b.close()                       # its session ends: its locks with it
        assert set(a.step().gained) == share_b
        assert set(a.owned) == set(range(N))
    finally:
        a.close()


def test_a_name_in_use_and_a_database_without_advisory_locks_are_refused(
        pg: str, tmp_path: Path) -> None:
    a = PartitionLeases(pg, "a", N)
    try:
        with pytest.raises(LeaseError, match="in use"):
            PartitionLeases(pg, "a", N)
    finally:
        a.close()
    PartitionLeases(pg, "a", N).close()     # free again once the first one's session ended
    with pytest.raises(LeaseError, match="need PostgreSQL"):
        PartitionLeases(str(tmp_path / "x.sqlite3"), "a", N)
