"""``hazgw replay``: a recorded CSV through the real engine gives the test kit's timeline for
the same series; time formats, separators, missing values, several columns, backward time
jumps (skipped and reported), bad input named by line and column; lead times before each
limit crossing; CSV and JSON output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.sim.kit import SimulatedSite, run
from gateway.sim.replay import ReplayError, parse_time, replay
from gateway.site import load_site
from tests.gateway.sim.test_simkit import SITE, direct, recording

T0 = 1_772_323_200_000          # 2026-03-01 00:00 UTC


def test_the_timeline_is_the_kits_for_the_same_series(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    rows = recording(tmp_path / "recorded.csv", 600, gaps=True)
    (tmp_path / "replay.yaml").write_text(
        "duration_s: 599\nspeed: 100\npoints:\n  L_mqtt: {replay: {csv: recorded.csv}, "
        "noise: 0}\n")
    sim = SimulatedSite.from_files(tmp_path / "site.yaml", tmp_path / "replay.yaml")
    kit = [r for r in run(sim).timeline() if r.point == "L_mqtt"]
    # the recording's header is "timestamp,value": map the value column to the point
    got = replay(load_site(tmp_path / "site.yaml"), tmp_path / "recorded.csv",
                 columns={"value": "L_mqtt"})
    assert {r.level for r in kit} >= {"H", "HH", "stale"}
    assert got.timeline() == kit
    assert got.result.readings == sum(v is not None for _, v in rows)
    assert got.missing == sum(v is None for _, v in rows)
    want = direct(tmp_path / "site.yaml", "L_mqtt", rows, sim.scenario.start_ms, 600)
    assert got.timeline() == want


def write(path: Path, header: list[str], rows: list[list[object]], sep: str = ",") -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f, delimiter=sep)
        w.writerow(header)
        w.writerows(rows)
    return path


def ramp(n: int, step_ms: int, fmt: str = "ms") -> list[list[object]]:
    """Two levels 3 min apart: L_mqtt climbs through H (8) and HH (9); L_modbus stays."""
    out: list[list[object]] = []
    for i in range(n):
        t = T0 + i * step_ms
        when: object = {"ms": t, "s": t / 1000, "iso": f"2026-03-01T{i // 60:02d}:{i % 60:02d}:00"
                        }[fmt]
        out.append([when, round(5.0 + 4.5 * min(1.0, i / (0.8 * n)), 4), 5.0])
    return out


def test_several_columns_iso_times_semicolons_and_lead_times(tmp_path: Path) -> None:
    """Minute samples in ISO (Beijing time): windows are sized from the spacing (1 min), so
    the 60 s trend window holds 2 samples and can never warn — the replay says so, and the
    crossings come without a warning (not hundreds of false ones from 1 s windows)."""
    (tmp_path / "site.yaml").write_text(SITE)
    path = write(tmp_path / "rec.csv", ["time", "level", "other"], ramp(200, 60_000, "iso"),
                 sep=";")
    r = replay(load_site(tmp_path / "site.yaml"), path, sep=";",
               columns={"level": "L_mqtt", "other": "L_modbus"})
    assert r.intervals_s == {"L_mqtt": 60.0, "L_modbus": 60.0}
    assert r.result.start_ms == T0 - 8 * 3_600_000          # naive ISO is Beijing time
    levels = [(row.point, row.level, row.event) for row in r.timeline()]
    assert ("L_mqtt", "H", "activate") in levels and ("L_mqtt", "HH", "raise") in levels
    assert all(p == "L_mqtt" for p, _, _ in levels)          # the flat column: nothing
    [h, hh] = [ld for ld in r.leads() if ld.point == "L_mqtt"]
    assert (h.level, hh.level) == ("H", "HH")
    assert h.lead_s is None and hh.lead_s is None
    assert r.notes == ["L_mqtt.trend.window_s: 60 s at a 60 s poll holds 2 samples, fewer "
                       "than min_samples (5): this rule can never warn"]


def test_backward_jumps_and_repeats_are_skipped_and_reported(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    rows = ramp(300, 1000)
    rows.insert(50, [T0 + 10_000, 5.0, 5.0])      # back to 10 s: a clock set back
    rows.insert(70, rows[69])                      # a repeated row
    path = write(tmp_path / "rec.csv", ["ts", "L_mqtt", "L_modbus"], rows)
    r = replay(load_site(tmp_path / "site.yaml"), path)
    assert [line for line, _ in r.skipped] == [52, 72]       # header is line 1
    assert r.result.readings == 2 * 300
    assert main(["replay", str(path), "--config", str(tmp_path / "site.yaml"),
                 "--out", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 row(s) not later than the row before" in out
    assert "line 52: time 1772323210000 is not after line 51's" in out
    doc = json.loads((tmp_path / "out.json").read_text())
    assert [s["line"] for s in doc["skipped"]] == [52, 72]
    assert {e["level"] for e in doc["events"]} >= {"H", "HH"}


def test_csv_output_and_unix_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    path = write(tmp_path / "rec.csv", ["t", "value"], [[r[0], r[1]] for r in
                                                        ramp(300, 1000, "s")])
    assert main(["replay", str(path), "--config", str(tmp_path / "site.yaml"),
                 "--column", "value=L_mqtt", "--out", str(tmp_path / "out.csv")]) == 0
    assert "alarm timeline (annunciated):" in capsys.readouterr().out
    with (tmp_path / "out.csv").open() as f:
        got = list(csv.DictReader(f))
    assert {(g["point"], g["level"]) for g in got} >= {("L_mqtt", "H"), ("L_mqtt", "HH")}
    assert all(int(g["ts_ms"]) >= T0 for g in got)
    # 1 s samples: the trend warns before H; the lead is the gap to the crossing
    [warn] = [g for g in got if g["alarm_type"] == "predictive" and g["event"] == "activate"]
    [h] = [g for g in got if g["alarm_type"] == "process" and g["level"] == "H"]
    assert float(h["lead_s"]) == (int(h["ts_ms"]) - int(warn["ts_ms"])) / 1000 > 0


@pytest.mark.parametrize(("text", "fmt", "ms"), [
    ("1772323200", "auto", T0), ("1772323200000", "auto", T0),
    ("1772323200000000", "auto", T0), ("1772323200000000000", "auto", T0),
    ("1772323200.5", "s", T0 + 500), ("2026-03-01T08:00:00", "auto", T0),
    ("2026-03-01T00:00:00Z", "iso", T0), ("2026/03/01 08:00", "%Y/%m/%d %H:%M", T0)])
def test_time_formats(text: str, fmt: str, ms: int) -> None:
    assert parse_time(text, fmt, 2) == ms


def test_bad_input_names_line_and_column(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    site = load_site(tmp_path / "site.yaml")
    bad = write(tmp_path / "bad.csv", ["ts", "L_mqtt"], [[T0, 1.0], [T0 + 1000, "high"]])
    with pytest.raises(ReplayError, match=r"line 3, column 'L_mqtt': 'high' is not a number"):
        replay(site, bad)
    when = write(tmp_path / "when.csv", ["ts", "L_mqtt"], [["yesterday", 1.0]])
    with pytest.raises(ReplayError, match=r"line 2: time 'yesterday' is not auto"):
        replay(site, when)
    none = write(tmp_path / "none.csv", ["ts", "x"], [[T0, 1.0]])
    assert main(["replay", str(none), "--config", str(tmp_path / "site.yaml")]) == 2
    assert "no column names a point of the site (columns: ts, x)" in capsys.readouterr().err
    assert main(["replay", str(none), "--config", str(tmp_path / "site.yaml"),
                 "--column", "x=NOPE"]) == 2
    assert "point 'NOPE' (column 'x') is not in the site" in capsys.readouterr().err
