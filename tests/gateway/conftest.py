"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.store.models import Database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated database of each supported kind (SQLite, PostgreSQL)."""
    d = Database(database_url)
    yield d
    d.close()
