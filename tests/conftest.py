"""Shared fixtures: private real servers, a PostgreSQL database, and the leak check."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import services
from tests.services import Server


@pytest.fixture(scope="session")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A private Mosquitto for the whole session (tests use distinct topics/client ids)."""
    with services.mosquitto(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A private InfluxDB 1.6.7 for the whole session (tests use distinct databases)."""
    with services.influxdb(tmp_path_factory.mktemp("influxdb")) as server:
        yield server


@pytest.fixture(scope="session")
def vm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A private VictoriaMetrics, the real InfluxDB v2 write endpoint of the tests."""
    with services.victoria_metrics(tmp_path_factory.mktemp("vm")) as server:
        yield server


@pytest.fixture
def influx_db(influx_server: Server) -> str:
    """A fresh, empty database on the session's InfluxDB."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    services.influx_create_db(influx_server, name)
    return name


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new database on the machine's PostgreSQL (127.0.0.1:5432, trust auth), dropped on
    exit."""
    import psycopg

    host = os.environ.get("HAZGW_TEST_PG_HOST", "127.0.0.1")
    admin = f"postgresql://postgres@{host}:5432/postgres"
    name = f"hazgw_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"PostgreSQL is not reachable at {host}:5432 ({exc}); start it "
                           "with 'pg_ctlcluster --skip-systemctl-redirect "
                           "$(ls /etc/postgresql) main start'") from exc
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{host}:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for the whole session."""
    with fresh_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind the product supports: every storage test runs twice."""
    if request.param == "sqlite":
        yield str(tmp_path / "hazgw.sqlite3")
        return
    with fresh_postgres() as url:
        yield url


# Threads that belong to an event loop's default executor are reclaimed when pytest-asyncio
# closes that loop, after this fixture's teardown; they are not leaks of the test.
_LOOP_EXECUTOR_PREFIX = "asyncio_"


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()
                and not t.name.startswith(_LOOP_EXECUTOR_PREFIX)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"test left threads running: {[t.name for t in left]}"


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks pending on its loop."""
    yield
    me = asyncio.current_task()
    deadline = asyncio.get_running_loop().time() + 2.0
    while True:
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not left or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    for t in left:
        t.cancel()
    assert not left, f"test left tasks pending: {[t.get_name() for t in left]}"


@pytest.fixture
def demo_config_path() -> Path:
    """The shipped demo plant."""
    return Path(__file__).resolve().parent.parent / "config" / "demo" / "plant.yaml"
