from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.store.models import Base, Database, normalise_url


def test_the_migrations_build_exactly_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as c:
            assert compare_metadata(MigrationContext.configure(c), Base.metadata) == []
        Database(database_url).close()           # upgrading an up-to-date database is a no-op
    finally:
        db.close()


def test_urls() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    assert normalise_url("var/x.sqlite3").startswith("sqlite:////")
