"""The harness itself: the machine's PostgreSQL gives each session a fresh database, and the
private servers stop when asked."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests import services


def test_postgres_session_database_is_fresh_and_writable(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TEMP TABLE probe (x int)")
        conn.execute("INSERT INTO probe VALUES (42)")
        assert conn.execute("SELECT x FROM probe").fetchone() == (42,)
        name = conn.execute("SELECT current_database()").fetchone()
    assert name is not None and name[0].startswith("hazgw_test_")


def test_private_mosquitto_stops_with_its_fixture(tmp_path: Path) -> None:
    with services.mosquitto(tmp_path / "m") as server:
        pid = server.proc.pid
        assert services.MOSQUITTO_READY(server)
    assert server.proc.poll() is not None, f"mosquitto {pid} still running"
