"""Golden scenarios (tests/cases/<name>/): points (and the devices that deliver them), an input
series (ts_ms, point, value, optional quality), operator actions (acknowledge, shelve; one
marked ``refused`` must be refused and change nothing) and clock ticks, and the expected
alarm timeline. Each runs twice: the series in as few batches as the actions and ticks allow,
and one reading at a time; both must give the expected timeline."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent, Engine
from alerting.lifecycle import InvalidTransitionError
from alerting.table import compile_rules
from tests.alerting.helpers import enterprise

CASES = Path(__file__).resolve().parent.parent / "cases"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "case.yaml").exists())

Row = tuple[int, str, float, int]


def load(name: str) -> tuple[dict[str, Any], list[Row], list[tuple[int, str, str, str]]]:
    case: dict[str, Any] = yaml.safe_load((CASES / name / "case.yaml").read_text())
    with (CASES / name / "input.csv").open() as f:
        rows = [(int(r["ts_ms"]), r["point"], float(r["value"]), int(r.get("quality") or 0))
                for r in csv.DictReader(f)]
    with (CASES / name / "expected.csv").open() as f:
        expected = [(int(r["ts_ms"]), r["alarm_id"], r["event"], r["level"])
                    for r in csv.DictReader(f)]
    return case, rows, expected


def run(case: dict[str, Any], rows: list[Row], single: bool) -> list[AlarmEvent]:
    points = case["points"]
    interval = float(case.get("interval_s", 1.0))
    device_of = {p: name for name, members in case.get("devices", {}).items()
                 for p in members}
    e = Engine(compile_rules(enterprise(points, case.get("votes")),
                             {p: interval for p in points}, device_of=device_of))
    # the agenda: operator actions and clock ticks, in time order
    agenda: list[tuple[int, dict[str, Any] | None]] = \
        [(a["at_ms"], a) for a in case.get("actions", [])] + \
        [(t, None) for t in case.get("ticks_ms", [])]
    agenda.sort(key=lambda x: x[0])
    out: list[AlarmEvent] = []
    pending: list[Row] = []

    def flush() -> None:
        if not pending:
            return
        idx = e.table.index(np.array([r[1] for r in pending]))
        out.extend(e.process(ReadingBatch(idx, np.array([r[0] for r in pending], np.int64),
                                          np.array([r[2] for r in pending]),
                                          np.array([r[3] for r in pending], np.uint8))))
        pending.clear()

    i = 0
    for at, action in [*agenda, (2**62, None)]:
        while i < len(rows) and rows[i][0] <= at:
            pending.append(rows[i])
            i += 1
            if single:
                flush()
        flush()
        if at == 2**62:
            break
        if action is None:
            out.extend(e.tick(at))
        elif action.get("refused"):
            before = e.describe(e.slot(action["alarm"]))
            with pytest.raises(InvalidTransitionError):
                act(e, action, at)
            assert e.describe(e.slot(action["alarm"])) == before     # nothing changed
        else:
            out.append(act(e, action, at))
    return out


def act(e: Engine, action: dict[str, Any], at: int) -> AlarmEvent:
    """One operator action of a case."""
    if action["action"] == "acknowledge":
        return e.acknowledge(action["alarm"], action["user"], at)
    if action["action"] == "shelve":
        return e.shelve(action["alarm"], action["user"], action["reason"],
                        at + int(action["minutes"] * 60_000), at)
    raise ValueError(f"unknown action {action['action']!r}")


def annunciated(events: list[AlarmEvent]) -> list[tuple[int, str, str, str]]:
    return sorted((x.ts, x.alarm_id, x.event, x.level_name) for x in events if x.annunciated)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("single", [False, True], ids=["one-batch", "reading-by-reading"])
def test_golden_case(name: str, single: bool) -> None:
    case, rows, expected = load(name)
    assert annunciated(run(case, rows, single)) == expected


def test_all_required_cases_are_present() -> None:
    assert set(NAMES) >= {"lpg_tank_overfill", "chlorine_leak", "dust_collector_clog",
                          "stuck_gas_detector", "detector_unplugged",
                          "chattering_level_switch", "gas_flapping_l2", "device_offline",
                          "shelve_expiry", "shelve_refused"}
