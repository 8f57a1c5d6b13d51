"""Processes started together on a fresh PostgreSQL database migrate it one at a time.
Seen before: two ``hazgw cluster`` instances started at once on a fresh database raced to
create the same tables ('duplicate key value violates unique constraint
"pg_type_typname_nsp_index"') and one of them stopped."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import fresh_postgres

# each process imports first, then waits for the same moment: the migrations start together
MIGRATE = ("import sys, time; from gateway.store.models import migrate; "
           "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); migrate(sys.argv[1])")
N = 8


def test_processes_migrating_one_fresh_database_at_once_all_succeed() -> None:
    with fresh_postgres() as url:
        at = str(time.time() + 4)
        procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, url, at],
                                  stderr=subprocess.PIPE) for _ in range(N)]
        errors = [p.communicate(timeout=120)[1].decode()[-300:] for p in procs]
        assert [p.returncode for p in procs] == [0] * N, [e for e in errors if e]
