"""The daily regulator report: figures from the database (SQLite and PostgreSQL), the online
count from a real InfluxDB 1.6.7, and the CLI and API that serve it."""

from __future__ import annotations

import json
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from alerting.escalation import EscalationConfig
from alerting.register import Five
from gateway.alarms.escalation import Escalator
from gateway.cli import main
from gateway.settings import InfluxSettings
from gateway.store.models import Database
from gateway.store.register import Register
from gateway.store.report import day_bounds, online_points, report, report_csv
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
    ack = activation(START + 2 * 3600 * S + 60 * S, "acknowledge", "ack", "op.liu")
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
        "alarms": {"count": 3, "handled": 1, "handling_rate": 0.3333, "escalated": 1},
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
    assert rep["alarms"] == {"count": 0, "handled": 0, "handling_rate": None, "escalated": 0}
    assert main(["report", "--config", str(demo_config_path), "--format", "csv",
                 "--day", "2026-11-23"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("metric,value\n") and "alarms.handling_rate,\n" in out
    assert main(["report", "--config", str(demo_config_path), "--day", "23/11"]) == 2
    assert "not a date" in capsys.readouterr().err
