"""Each rule kind on small series, and batch/single invariance with every rule enabled."""

from __future__ import annotations

import pytest

from alerting.batch import Quality
from tests.alerting.helpers import (
    GAS,
    LEVEL,
    batch_and_single,
    engine,
    feed,
    random_series,
    timeline,
)


def test_on_delay_needs_the_condition_to_last_and_is_stamped_when_it_ran_out() -> None:
    e = engine({"L": {**LEVEL, "on_delay_s": 10, "off_delay_s": 5}})
    rows = [(0, "L", 5.0), (1000, "L", 8.5), (5000, "L", 8.6), (6000, "L", 7.0),  # too short
            (20000, "L", 8.5), (25000, "L", 8.5), (31000, "L", 8.7),          # lasts 11 s
            (40000, "L", 6.0), (42000, "L", 6.0), (46000, "L", 6.1)]
    assert timeline(feed(e, rows)) == [(30000, "L:process", "activate", "H"),
                                       (45000, "L:process", "clear", "normal")]


def test_level_points_get_the_default_delay_and_gas_points_none() -> None:
    e = engine({"L": LEVEL, "G": GAS})
    ev = feed(e, [(0, "L", 8.5), (0, "G", 30.0), (30000, "L", 8.5), (61000, "L", 8.5)])
    assert timeline(ev) == [(0, "G:process", "activate", "H"),
                            (60000, "L:process", "activate", "H")]
    assert [x.gb50493_level for x in ev if x.point == "G"] == [1]


def test_fault_on_bad_quality_or_out_of_range_never_a_gas_alarm() -> None:
    e = engine({"G": GAS})
    ev = feed(e, [(0, "G", 5.0), (1000, "G", 0.0, Quality.BAD), (2000, "G", 5.0),
                  (3000, "G", 130.0), (4000, "G", 4.0)])
    assert timeline(ev) == [(1000, "G:fault", "activate", "fault"),
                            (2000, "G:fault", "clear", "normal"),
                            (3000, "G:fault", "activate", "fault"),
                            (4000, "G:fault", "clear", "normal")]
    assert all(x.priority == 3 for x in ev)


def test_stale_from_a_gap_or_from_the_clock_gives_the_same_times() -> None:
    pts = {"L": {**LEVEL, "stale_after_s": 10}}
    gap = engine(pts)
    by_gap = feed(gap, [(0, "L", 5.0), (30000, "L", 5.0)])
    clock = engine(pts)
    by_clock = feed(clock, [(0, "L", 5.0)]) + clock.tick(15000) + clock.tick(20000)
    by_clock += feed(clock, [(30000, "L", 5.0)])
    expected = [(10000, "L:stale", "activate", "stale"), (30000, "L:stale", "clear", "normal")]
    assert timeline(by_gap) == timeline(by_clock) == expected


def test_rate_of_change_rising_and_back() -> None:
    e = engine({"P": {**LEVEL, "roc": {"rise_per_min": 6, "window_s": 5}}})  # 0.1 m/s
    rows = [(i * 1000, "P", 2.0) for i in range(6)]
    rows += [(6000 + i * 1000, "P", 2.0 + 0.2 * (i + 1)) for i in range(10)]   # 0.2 m/s
    rows += [(16000 + i * 1000, "P", 4.0) for i in range(10)]
    ev = [x for x in feed(e, rows) if x.alarm_type == "roc"]
    assert [(x.event, x.level_name) for x in ev] == [("activate", "rising"), ("clear", "normal")]
    assert ev[0].ts == 8000   # 5 samples back: (2.6 - 2.0) / 5 s = 0.12 m/s ≥ 0.1
    assert ev[1].ts == 18000  # (4.0 - 3.6) / 5 s = 0.08 m/s < 0.8 × 0.1


def test_trend_warns_before_the_limit_and_is_labelled_predictive() -> None:
    e = engine({"T": {**LEVEL, "on_delay_s": 0, "trend": {"horizon_s": 30, "window_s": 10}}})
    rows = [(i * 1000, "T", 5.0 + 0.05 * i) for i in range(80)]      # 0.05 m/s toward 8 m
    ev = feed(e, rows)
    pred = [x for x in ev if x.alarm_type == "predictive"]
    proc = [x for x in ev if x.alarm_type == "process"]
    assert pred[0].event == "activate" and pred[0].level_name == "toward_high"
    # the fit sees 8 m reached at 60 s: the warning comes 30 s before
    assert pred[0].ts == 30000 and pred[0].forecast_s == pytest.approx(30.0)
    assert pred[0].priority == 4 and pred[0].gb50493_level is None
    assert proc[0].ts == 60000 and proc[0].ts > pred[0].ts


def test_flatline_suspect_then_fail_then_clear() -> None:
    e = engine({"F": {**LEVEL, "flatline": {"suspect_s": 10, "fail_s": 20}}})
    rows = [(i * 1000, "F", 5.0 + 0.01 * i) for i in range(5)]
    rows += [(5000 + i * 1000, "F", 5.04) for i in range(25)]
    rows += [(30000, "F", 5.5)]
    ev = [x for x in feed(e, rows) if x.alarm_type == "flatline"]
    assert [(x.ts, x.event, x.level_name) for x in ev] == [
        (14000, "activate", "suspect"), (24000, "raise", "fail"), (30000, "clear", "normal")]


def test_flatline_of_a_gas_detector_counts_only_while_neighbours_move() -> None:
    flat_gas = {**GAS, "flatline": {"suspect_s": 10, "fail_s": 100, "tolerance": 0.01,
                                    "require_related_moving": True}}
    quiet = engine({"G1": flat_gas, "G2": GAS})
    rows = [(i * 1000, p, 0.0) for i in range(30) for p in ("G1", "G2")]
    assert [x for x in feed(quiet, rows) if x.alarm_type == "flatline"] == []
    busy = engine({"G1": flat_gas, "G2": GAS})
    rows = [(i * 1000, "G1", 3.0) for i in range(30)]
    rows += [(i * 1000, "G2", 3.0 + (i % 3)) for i in range(30)]
    ev = [x for x in feed(busy, rows) if x.alarm_type == "flatline"]
    assert [(x.ts, x.event) for x in ev] == [(10000, "activate")]


def test_tamper_sudden_drop_to_zero() -> None:
    e = engine({"L": {**LEVEL, "tamper": {}}})
    ev = feed(e, [(0, "L", 5.0), (1000, "L", 5.1), (2000, "L", 0.0), (3000, "L", 0.0),
                  (60000, "L", 4.0)])
    tam = [(x.ts, x.event) for x in ev if x.alarm_type == "tamper"]
    assert tam == [(2000, "activate"), (60000, "clear")]
    slow = engine({"L": {**LEVEL, "tamper": {}}})
    ev2 = feed(slow, [(0, "L", 5.0), (60000, "L", 0.0)])   # 60 s apart: not "sudden"
    assert [x for x in ev2 if x.alarm_type == "tamper"] == []


def test_two_out_of_three_vote() -> None:
    pts = {f"G{i}": GAS for i in range(3)}
    e = engine(pts, votes={"dike_2oo3": {"points": ["G0", "G1", "G2"], "k": 2}})
    ev = feed(e, [(0, "G0", 30.0), (1000, "G1", 30.0), (2000, "G2", 30.0), (3000, "G0", 1.0),
                  (4000, "G1", 1.0)])
    votes = [(x.ts, x.event) for x in ev if x.alarm_type == "vote"]
    assert votes == [(1000, "activate"), (4000, "clear")]
    assert next(x.priority for x in ev if x.alarm_type == "vote") == 1


def test_toxic_l1_is_listed_before_combustible_l1_and_l2_before_both() -> None:
    tox = {"kind": "toxic_gas", "unit": "mg/m3", "range_low": 0, "range_high": 30, "hi": 1,
           "hihi": 2, "gas": {"substance": "chlorine", "oel": 1, "oel_basis": "MAC"}}
    e = engine({"C": GAS, "T": tox, "C2": GAS})
    feed(e, [(0, "C", 30.0), (1000, "T", 1.5), (2000, "C2", 60.0)])
    assert [x.alarm_id for x in e.standing()] == ["C2:process", "T:process", "C:process"]


ALL_RULES = {**LEVEL, "lolo": 0.5, "on_delay_s": 3, "off_delay_s": 2, "stale_after_s": 5,
             "roc": {"rise_per_min": 60, "fall_per_min": 60, "window_s": 3},
             "trend": {"horizon_s": 20, "window_s": 6},
             "flatline": {"suspect_s": 4, "fail_s": 8, "tolerance": 0.001}, "tamper": {}}


@pytest.mark.parametrize("seed", [3, 4])
def test_every_rule_gives_one_timeline_in_one_batch_or_reading_by_reading(seed: int) -> None:
    points = {f"P{i}": ALL_RULES for i in range(6)}
    rows = random_series(seed, 6, 300)
    whole, single = batch_and_single(points, rows)
    kinds = {a.split(":")[1] for _, a, _, _ in whole}
    assert kinds >= {"process", "roc", "predictive", "fault", "stale", "flatline", "tamper"}
    assert whole == single


def test_trend_sums_survive_the_daily_rebase() -> None:
    # one sample a minute for 30 h (the sums move to a new epoch after 24 h), then a ramp;
    # an engine that saw only the last hour must forecast the same
    pts = {"T": {**LEVEL, "on_delay_s": 0, "stale_after_s": 600,
                 "trend": {"horizon_s": 600, "window_s": 600}}}
    flat = [(i * 60_000, "T", 5.0) for i in range(1800)]
    ramp = [(1800 * 60_000 + i * 60_000, "T", 5.0 + 0.02 * (i + 1)) for i in range(160)]
    long_run = [x for x in feed(engine(pts, interval_s=60), flat + ramp)
                if x.alarm_type == "predictive"]
    short_run = [x for x in feed(engine(pts, interval_s=60), flat[-60:] + ramp)
                 if x.alarm_type == "predictive"]
    assert long_run and [x.ts for x in long_run] == [x.ts for x in short_run]
    assert long_run[0].forecast_s == pytest.approx(short_run[0].forecast_s, abs=1e-5)
    # 0.02 m/min toward 8 m: the warning comes when 8 m is at most 600 s away
    assert long_run[0].forecast_s is not None and 540 <= long_run[0].forecast_s <= 600


def test_suppression_by_design_while_the_pump_is_stopped() -> None:
    run = {"kind": "digital", "unit": "", "range_low": 0, "range_high": 1, "stale_after_s": 600}
    flow = {"kind": "flow", "unit": "m3/h", "range_low": 0, "range_high": 100, "lo": 10,
            "on_delay_s": 0, "off_delay_s": 0, "stale_after_s": 600,
            "suppress_when": {"point": "P_run", "below": 0.5}}
    e = engine({"P_run": run, "F": flow})
    ev = feed(e, [(0, "P_run", 1.0), (0, "F", 50.0)])
    ev += feed(e, [(1000, "P_run", 0.0), (1000, "F", 40.0)])       # pump stops
    ev += feed(e, [(2000, "P_run", 0.0), (2000, "F", 0.0)])        # no flow: expected
    ev += feed(e, [(3000, "P_run", 1.0), (3000, "F", 2.0)])        # restarted, still no flow
    flow_events = [(x.ts, x.event, x.state, x.annunciated) for x in ev
                   if x.alarm_id == "F:process"]
    assert flow_events == [(1000, "suppress", "suppressed", True),
                           (2000, "condition", "suppressed", False),
                           (3000, "unsuppress", "unack", True)]


def test_recent_samples_of_a_point_with_a_windowed_rule_oldest_first() -> None:
    e = engine({"P": {**LEVEL, "roc": {"rise_per_min": 6, "window_s": 5}}})
    feed(e, [(k * 1000, "P", 2.0 + k / 8) for k in range(20)])
    assert e.recent("P") == [(k * 1000, 2.0 + k / 8) for k in range(4, 20)]   # the last 16
    assert e.recent("NOPE") == []
