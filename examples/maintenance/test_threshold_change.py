"""Testing a threshold change before it goes live.

The change under review (plant.yaml): T101_level's H lowered from 10.8 m to 10.5 m. Before it
goes live we prove, against the plant's own config with the devices simulated:

1. an overfill still raises H, then HH, at the times the physics says;
2. last month's recorded peak-fill half hour, replayed, raises no level alarm (no nuisance),
   while an H just under its peak would have: the replay does reach the rules;
3. the other alarms of the site are untouched: a leak still gives L1 then L2 on GT101.

Run it with ``pytest`` in this folder; nothing but the installed hazgw package is needed.
"""

from pathlib import Path

from gateway.testkit import expect_alarms

HERE = Path(__file__).parent


def test_overfill_raises_h_then_hh_in_time(simulated_site, gateway_under_test):
    site = simulated_site("plant.yaml", "scenarios/overfill.yaml", speed=100)
    result = gateway_under_test(site).run()
    expect_alarms(result, [
        "H on T101_level at 690s ±10s",      # 10.5 m crossed at 630 s, + 60 s on-delay
        "HH on T101_level at 1050s ±10s",    # 11.1 m crossed at 990 s, + 60 s on-delay
        "no fault on T101_level",
    ])


def test_last_months_peak_fill_raises_no_level_alarm(simulated_site, gateway_under_test):
    site = simulated_site("plant.yaml", "scenarios/last_month.yaml", speed=1000)
    result = gateway_under_test(site).run()
    expect_alarms(result, ["no H on T101_level", "no HH on T101_level"])


def test_an_h_below_last_months_peak_would_have_raised_it(simulated_site, gateway_under_test,
                                                          tmp_path):
    too_low = tmp_path / "plant.yaml"
    too_low.write_text((HERE / "plant.yaml").read_text().replace("hi: 10.5,", "hi: 10.2,"))
    site = simulated_site(too_low, HERE / "scenarios/last_month.yaml", speed=1000)
    result = gateway_under_test(site).run()
    # 10.2 m is passed 550 s into the recording; + 60 s on-delay
    expect_alarms(result, ["H on T101_level between 600s and 640s"])


def test_leak_still_gives_l1_then_l2(run_scenario):
    run_scenario("plant.yaml", "scenarios/leak.yaml")   # checks the scenario's own expect:
