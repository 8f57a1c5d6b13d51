"""The daily regulator report: figures from the database (SQLite and PostgreSQL), the online
count from a real InfluxDB 1.6.7, and the CLI and API that serve it."""

from __future__ import annotations

import json
import urllib.request
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from alerting.batch import ReadingBatch
from alerting.engine import Engine
from alerting.escalation import EscalationConfig
from alerting.register import Five
from gateway.alarms.escalation import Escalator
from gateway.cli import main
from gateway.settings import InfluxSettings
from gateway.site import load_site
from gateway.store.models import Database
from gateway.store.register import Register
from gateway.store.report import day_bounds, online_points, report, report_csv
from gateway.stream.compiled import as_compiled
from tests.gateway.alarms.test_notify import activation
from tests.services import Server

DAY = date(2026, 11, 23)
START, END = day_bounds(DAY)
S = 1000


def fill(db: Database) -> None:
    esc = Escalator(db, EscalationConfig.model_validate({"default": {1: {"steps": [
        {"after_s": 0, "roles": ["operator"]}, {"after_s": 300, "roles": ["main"]}]}}}))
    a, b, c = (activation(START + k * 3600 * S) for k in (1, 2, 3))
    for k, e in enumerate((a, b, c)):
        e.alarm_id = f"P{k}:process"
    esc.record([a])
    esc.tick(START + 3600 * S + 400 * S)            # P0 escalates to step 1
    esc.record([b, c, activation(END + 10, "activate")])   # the last one is tomorrow's
    ack = activation(START + 2 * 3600 * S + 60 * S, "ack", "ack", "op.liu")
    ack.alarm_id = "P1:process"
    esc.record([ack])
    reg = Register(db)
    reg.create(enterprise="E1", hazard_source="farm", title="major, no deadline yet",
               level="major", source="inspection", actor="insp", now_ms=START + 100)
    late = reg.create(enterprise="E1", hazard_source="farm", title="overdue", level="general",
                      source="inspection", actor="insp", five=Five(deadline_ms=START + 200),
                      now_ms=START)
    reg.transition(late, "start", "sm", now_ms=START + 150)


def test_figures_of_a_day(db: Database) -> None:
    fill(db)
    rep = report(db, "E1", 16, DAY, 15)
    assert rep == {
        "enterprise": "E1", "day": "2026-11-23",
        "points": {"total": 16, "online": 15, "online_rate": 0.9375},
        "alarms": {"count": 3, "acknowledged_in_time": 1, "acknowledged_late": 0,
                   "self_cleared": 0, "shelved_or_removed": 0, "unhandled": 2, "handled": 1,
                   "handling_rate": 0.3333, "ack_within_s": 300.0, "notified": 1,
                   "escalated": 1},
        "hazards": {"open": 2, "overdue": 1, "major_open": 1, "supervised": 2, "closed": 0}}
    assert report_csv(rep).splitlines()[:4] == [
        "metric,value", "enterprise,E1", "day,2026-11-23", "points.total,16"]


def test_online_points_from_influxdb(influx_server: Server, influx_db: str) -> None:
    lines = "\n".join([
        f"reading,enterprise=E1,point=A quality=0i,value=1 {START + 1000}",
        f"reading,enterprise=E1,point=B quality=2i {START + 1000}",        # bad only
        f"reading,enterprise=E1,point=C quality=0i,value=1 {END + 1000}",   # next day
        f"reading,enterprise=E2,point=D quality=0i,value=1 {START + 1000}"])
    req = urllib.request.Request(f"{influx_server.url}/write?db={influx_db}&precision=ms",
                                 data=lines.encode(), method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    settings = InfluxSettings(url=influx_server.url, database=influx_db)
    assert online_points(settings, "E1", START, END) == 1
    assert online_points(InfluxSettings(kind="none"), "E1", START, END) is None


def test_cli_prints_json_and_csv(tmp_path: Path, demo_config_path: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HAZGW_DATABASE_URL", str(tmp_path / "r.sqlite3"))
    monkeypatch.setenv("HAZGW_INFLUX__KIND", "none")
    assert main(["report", "--config", str(demo_config_path), "--day", "2026-11-23"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["day"] == "2026-11-23" and rep["points"]["online"] is None
    # nothing to rate: no rate (it read 1.0, "every alarm handled", on a day with none)
    assert rep["alarms"] == {"count": 0, "acknowledged_in_time": 0, "acknowledged_late": 0,
                             "self_cleared": 0, "shelved_or_removed": 0, "unhandled": 0,
                             "handled": 0, "handling_rate": None, "ack_within_s": 300.0,
                             "notified": 0, "escalated": 0}
    assert main(["report", "--config", str(demo_config_path), "--format", "csv",
                 "--day", "2026-11-23"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("metric,value\n") and "alarms.handling_rate,\n" in out
    assert main(["report", "--config", str(demo_config_path), "--day", "23/11"]) == 2
    assert "not a date" in capsys.readouterr().err


def scenario_day(db: Database, site_path: Path) -> None:
    """A day of the demo plant through the real engine and escalation, with a known timeline
    (every point sampled each 10 s during its episode, Beijing time):

    01:00 GT101 L1, L2 at 01:02, acknowledged at 01:03 (in time), normal at 01:10
    02:00 AT201 L1, step 1 at 02:10, acknowledged at 02:20 (late), normal at 02:25
    03:00 V101_press H (15 s on-delay), back below at 03:01 (self-cleared, never acknowledged)
    04:00 DC301_dp H, never acknowledged (unhandled; step 1 at 04:10)
    05:00 GT102 L1, shelved at 05:01 by a safety manager
    """
    engine = Engine(as_compiled(load_site(site_path)).table)
    esc = Escalator(db, EscalationConfig.model_validate({"default": {p: {"steps": [
        {"after_s": 0, "roles": ["operator"]}, {"after_s": 600, "roles": ["main"]}]}
        for p in (1, 2, 3)}}))
    h = 3600 * S

    def series(point: str, t0: int, values: list[tuple[int, float]], end_s: int,
               ) -> list[tuple[int, str, float]]:
        """(ts, point, value) every 10 s to ``end_s``, each value from its start second."""
        out = []
        for k in range(0, end_s + 1, 10):
            v = next(val for since, val in reversed(values) if k >= since)
            out.append((t0 + k * S, point, v))
        return out

    readings = (series("GT101", START + h, [(0, 30.0), (120, 60.0), (600, 5.0)], 700)
                + series("AT201", START + 2 * h, [(0, 1.5), (1500, 0.1)], 1600)
                + series("V101_press", START + 3 * h, [(0, 1.7), (60, 1.0)], 100)
                + series("DC301_dp", START + 4 * h, [(0, 1900.0)], 600)
                + series("GT102", START + 5 * h, [(0, 22.0)], 300))
    actions = {START + h + 180 * S: lambda ts: engine.acknowledge("GT101:process", "op.liu", ts),
               START + 2 * h + 1200 * S: lambda ts: engine.acknowledge("AT201:process",
                                                                     "op.liu", ts),
               START + 5 * h + 60 * S: lambda ts: engine.shelve(
                   "GT102:process", "safety.wang", "loading arm purge", ts + h, ts)}
    ticks = {START + k * h + m * 60 * S for k in range(1, 6) for m in range(0, 30)}
    times = sorted({r[0] for r in readings} | set(actions) | ticks)
    by_ts: dict[int, list[tuple[int, str, float]]] = {}
    for r in readings:
        by_ts.setdefault(r[0], []).append(r)
    for ts in times:
        if ts in by_ts:
            rows = by_ts[ts]
            esc.record(engine.process(ReadingBatch(
                engine.table.index(np.array([r[1] for r in rows])),
                np.array([r[0] for r in rows], np.int64), np.array([r[2] for r in rows]),
                np.zeros(len(rows), np.uint8))))
        if ts in actions:
            esc.record([actions[ts](ts)])
        if ts in ticks:
            esc.tick(ts)


def test_every_report_figure_against_a_known_timeline(db: Database,
                                                      demo_config_path: Path) -> None:
    scenario_day(db, demo_config_path)
    rep = report(db, "E1", 16, DAY, None)
    assert rep["alarms"] == {
        "count": 5, "acknowledged_in_time": 1, "acknowledged_late": 1, "self_cleared": 1,
        "shelved_or_removed": 1, "unhandled": 1, "handled": 1, "handling_rate": 0.2,
        "ack_within_s": 300.0, "notified": 5, "escalated": 2}
    # a stricter response time: the 3-minute acknowledgement is late too
    assert report(db, "E1", 16, DAY, None, ack_within_s=120)["alarms"]["handled"] == 0
