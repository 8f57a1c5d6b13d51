"""Scenario files: every mistake named by its path, references checked against the site."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.sim.scenario import ScenarioError, SimPlant, load_scenario, parse_scenario
from gateway.sim.serve import site_plant
from gateway.site import load_site

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = sorted((ROOT / "config" / "scenarios").glob("*.yaml"))


def demo_plant(doc: dict[str, object]) -> SimPlant:
    return site_plant(load_site(ROOT / "config" / "demo" / "plant.yaml"), parse_scenario(doc))


def test_every_error_is_listed_by_path() -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario({"duration_s": -1, "speed": 5000, "events": [
            {"at_s": 1, "point": "X", "do": "explode"},
            {"at_s": 2, "point": "X", "do": "fill", "in_m3h": 5},
            {"at_s": 3, "point": "X", "device": "d", "do": "stuck"},
            {"at_s": 4, "point": "X", "do": "step", "to": "high"}],
            "expect": [{"point": "X", "level": "H"}]})
    text = str(err.value)
    for where in ("duration_s:", "speed:", "events.0:", "'explode' is not one of",
                  "events.1:", "not in_m3h", "events.2:", "exactly one of point and device",
                  "events.3:", "to: must be a number", "expect.0:", "give at_s"):
        assert where in text, (where, text)


def test_references_to_the_site_are_checked() -> None:
    with pytest.raises(ScenarioError) as err:
        demo_plant({"duration_s": 60, "points": {"NOPE": {"baseline": 1}},
                    "events": [{"at_s": 1, "point": "GT999", "do": "stuck"},
                               {"at_s": 1, "device": "plc-moon", "do": "offline"}],
                    "expect": [{"point": "V999", "level": "H", "never": True}]})
    text = str(err.value)
    assert "4 error(s)" in text
    for where in ("points.NOPE", "events[0].point", "'GT999'", "events[1].device",
                  "'plc-moon'", "expect[0].point"):
        assert where in text


def test_device_faults_apply_in_their_window_and_the_latest_wins() -> None:
    plant = demo_plant({"duration_s": 600, "events": [
        {"at_s": 10, "device": "plc-dust", "do": "offline", "for_s": 100},
        {"at_s": 50, "device": "plc-dust", "do": "exception", "code": 2, "for_s": 10}]})
    assert plant.fault("plc-dust", 5) is None
    fault = plant.fault("plc-dust", 20)
    assert fault is not None and fault.kind == "offline"
    fault = plant.fault("plc-dust", 55)
    assert fault is not None and (fault.kind, fault.code) == ("exception", 2)
    assert plant.fault("plc-dust", 110) is None
    assert plant.fault("plc-lpg", 20) is None


def test_a_missing_replay_file_and_a_bad_row_are_named(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("duration_s: 60\npoints:\n"
                                     "  V101_level: {replay: {csv: rec.csv}}\n")
    scenario, base = load_scenario(tmp_path / "s.yaml")
    site = load_site(ROOT / "config" / "demo" / "plant.yaml")
    points = {pid: p for pid, (_, _, p) in site.enterprise.points().items()}
    with pytest.raises(ScenarioError, match=r"rec\.csv"):
        SimPlant(scenario, points, {}, base)
    (tmp_path / "rec.csv").write_text("timestamp,value\n0,1.0\n1000,oops\n")
    with pytest.raises(ScenarioError, match=r"rec\.csv line 3"):
        SimPlant(scenario, points, {}, base)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_fit_the_demo_plant(path: Path) -> None:
    scenario, _ = load_scenario(path)
    demo_plant(scenario.model_dump())
    assert scenario.expect, "a shipped scenario says what it must raise"
