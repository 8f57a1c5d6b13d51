"""A gateway that dies hard between an alarm and its notifications (a test helper):
``python -m tests.gateway.alarms.escalate_and_die DB_URL HOOK_PORT`` records an HH
activation, fires every
escalation step that is due 30 min later (the outbox rows commit with them), and kills itself
with SIGKILL before delivering anything."""

from __future__ import annotations

import os
import signal
import sys

from gateway.alarms.escalation import Escalator
from gateway.store.models import Database
from tests.gateway.alarms.test_notify import T0, activation, contacts, escalator_config

if __name__ == "__main__":
    db = Database(sys.argv[1])
    esc = Escalator(db, escalator_config(), contacts(int(sys.argv[2])), "E1",
                    {"lpg_farm": "二级"})
    esc.record([activation(T0)])
    fired = esc.tick(T0 + 1800_000)
    print(len(fired), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
