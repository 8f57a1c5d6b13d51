"""The maintenance teams' kit: shipped scenarios at 100× give their expected timelines, and a
recorded series replayed at 100× gives the timeline the rule engine gives on it directly."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent, Engine
from edge.sim.scenario import BEIJING, load_scenario
from gateway.settings import InfluxSettings
from gateway.sim.expect import expect_alarms
from gateway.sim.kit import RunResult, SimulatedSite, TimelineRow, run
from gateway.site import load_site
from gateway.stream.compiled import as_compiled

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "config" / "demo" / "plant.yaml"
SHIPPED = ("tank_overfill", "toxic_leak", "dust_collector_clog", "stuck_detector", "tamper",
           "device_offline")

SITE = """
enterprise:
  code: 91320582MA1W3K4X5R
  name: Replay Co.
  hazard_sources:
    farm:
      name: Tank farm
      unit_type: storage
      exposed_population_500m: 0
      responsible_persons:
        main: {name: A, phone: "138 0000 0001"}
        technical: {name: B, phone: "138 0000 0002"}
        operational: {name: C, phone: "138 0000 0003"}
      equipment:
        T1:
          kind: tank
          points:
            L_mqtt: {kind: level, unit: m, range_low: 0, range_high: 10, lolo: 0.5, lo: 1,
                     hi: 8, hihi: 9, trend: {horizon_s: 120, window_s: 60},
                     roc: {rise_per_min: 1.0, window_s: 10}}
            L_modbus: {kind: level, unit: m, range_low: 0, range_high: 10, lo: 1, hi: 8,
                       hihi: 9}
edges:
  e1:
    modbus:
      plc: {host: 127.0.0.1, port: 1502, registers: {L_modbus: {address: 0, type: float64}}}
    mqtt_sensors:
      level: {topic: farm/T1/level, point: L_mqtt}
"""


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_gives_its_timeline_at_100x(
        name: str, run_scenario: Callable[..., RunResult]) -> None:
    result = run_scenario(DEMO, ROOT / "config" / "scenarios" / f"{name}.yaml", speed=100)
    assert result.readings > 0 and result.malformed == 0


def recording(path: Path, n: int, gaps: bool) -> list[tuple[int, float | None]]:
    """A level that wobbles up through H and HH and back, 1 s apart; with ``gaps``, some
    rows say NA and a 40 s stretch is missing (the detector was unplugged)."""
    t0 = int(np.datetime64("2026-03-01T00:00:00").astype("datetime64[ms]").astype(np.int64))
    rows: list[tuple[int, float | None]] = []
    for i in range(n):
        if gaps and 200 <= i < 240:
            continue
        v = 6.0 + 3.5 * math.sin(i / 90) + 0.3 * math.sin(i / 7)
        rows.append((t0 + 1000 * i, None if gaps and i % 97 == 13 else round(v, 4)))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        w.writerows([(t, "NA" if v is None else v) for t, v in rows])
    return rows


def direct(site_path: Path, point: str, rows: list[tuple[int, float | None]],
           start_ms: int, steps: int) -> list[TimelineRow]:
    """The recorded series straight into the rule engine, ticking the clock every second."""
    engine = Engine(as_compiled(load_site(site_path)).table)
    t_first = rows[0][0]
    by_t = {t - t_first: v for t, v in rows if v is not None}
    events: list[AlarmEvent] = []
    for k in range(steps):
        now = start_ms + 1000 * k
        if (v := by_t.get(1000 * k)) is not None:
            events += engine.process(ReadingBatch(engine.table.index(np.array([point])),
                                                  np.array([now]), np.array([v]),
                                                  np.zeros(1, np.uint8)))
        events += engine.tick(now)
    return [r for r in RunResult(events, start_ms, steps, 0, 0.0, 0.0).timeline()
            if r.point == point]


@pytest.mark.parametrize(("point", "gaps"), [("L_mqtt", True), ("L_modbus", False)],
                         ids=["mqtt-sensor-with-gaps", "modbus-float64"])
def test_replayed_csv_at_100x_gives_the_engines_own_timeline(
        tmp_path: Path, point: str, gaps: bool) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    rows = recording(tmp_path / "recorded.csv", 600, gaps)
    (tmp_path / "replay.yaml").write_text(
        f"duration_s: 599\nspeed: 100\npoints:\n  {point}: {{replay: {{csv: recorded.csv}}, "
        "noise: 0}\n")
    sim = SimulatedSite.from_files(tmp_path / "site.yaml", tmp_path / "replay.yaml")
    result = run(sim)
    got = [r for r in result.timeline() if r.point == point]
    want = direct(tmp_path / "site.yaml", point, rows, sim.scenario.start_ms, result.steps)
    assert {r.level for r in want} >= {"H", "HH"}          # the series does cross the limits
    if gaps:
        assert "stale" in {r.level for r in want}
    assert got == want


def test_a_failed_expectation_shows_each_verdict_and_the_timeline() -> None:
    timeline = [TimelineRow(630.0, "V101_level", "H", "activate", "process"),
                TimelineRow(900.0, "V101_level", "HH", "raise", "process")]
    with pytest.raises(AssertionError) as err:
        expect_alarms(timeline, ["H on V101_level at 630s ±30s", "HH on V101_level at 846s ±30s",
                                 "no H on V101_level", "fault on DC301_dp by 100s"])
    text = str(err.value)
    assert "ok   H on V101_level at 630s ±30s: first came at 630.0s" in text
    assert "FAIL HH on V101_level at 846s ±30s: first came at 900.0s (54.0s late)" in text
    assert "FAIL no H on V101_level: came at 630.0s" in text
    assert "FAIL fault on DC301_dp at 50s ±50s: never came" in text
    assert "900.0s  HH" in text
    expect_alarms(timeline, ["H on V101_level between 600s and 660s", "no LL on V101_level"])


def test_scenario_start_is_beijing_time_by_default() -> None:
    scenario, _ = load_scenario(ROOT / "config" / "scenarios" / "tamper.yaml")
    assert scenario.start.tzinfo == BEIJING


def test_same_seed_same_run_bit_for_bit_other_seed_other_noise(tmp_path: Path) -> None:
    """The readings and alarm events the gateway writes to InfluxDB, from two runs of one
    scenario with one seed, and one with another (self-metrics, which count real-time
    batching, are left out)."""
    def written(seed: int, name: str) -> bytes:
        sim = SimulatedSite.from_files(DEMO, ROOT / "config" / "scenarios" / "tamper.yaml",
                                       speed=1000, seed=seed, duration_s=150)
        run(sim, influx=InfluxSettings(kind="file", path=tmp_path / name))
        lines = (tmp_path / name).read_bytes().splitlines(keepends=True)
        return b"".join(x for x in lines if x.startswith((b"reading,", b"alarm_event,")))

    a, b, c = written(5, "a.lp"), written(5, "b.lp"), written(6, "c.lp")
    assert a.count(b"\n") > 1000 and b"drop_to_zero" in a
    assert a == b
    assert a != c
    # only the noise differs: the same points at the same times, the same alarms
    assert [line.split(b" ")[0] for line in a.splitlines()] == \
        [line.split(b" ")[0] for line in c.splitlines()]
