"""Signal models: deterministic by seed, and each effect and fault does what it says."""

from __future__ import annotations

import numpy as np

from edge.sim.signals import Effect, PointSignal, Recorded

T = np.arange(0, 600, 1.0)


def signal(*effects: Effect, seed: int = 1, noise: float = 0.0,
           recorded: Recorded | None = None) -> PointSignal:
    return PointSignal("L1", baseline=5.0, range_low=0.0, range_high=10.0, noise_std=noise,
                       seed=seed, start_ms=1_767_225_600_000, recorded=recorded,
                       effects=effects)


def test_same_seed_same_series_bit_for_bit_in_any_order_or_batching() -> None:
    a = signal(noise=0.1).values(T)
    b = signal(noise=0.1).values(T)
    assert a.tobytes() == b.tobytes()
    # asked one at a time, backwards: still the same numbers
    one_by_one = np.array([signal(noise=0.1).values(np.array([t]))[0] for t in T[::-1]])[::-1]
    assert one_by_one.tobytes() == a.tobytes()


def test_another_seed_gives_other_noise_of_the_asked_size() -> None:
    a, b = signal(noise=0.1, seed=1).values(T), signal(noise=0.1, seed=2).values(T)
    assert np.mean(a == b) < 0.01
    for v in (a, b):
        assert abs(np.std(v - 5.0) - 0.1) < 0.02
        assert abs(np.mean(v - 5.0)) < 0.02


def test_fill_raises_the_level_by_net_flow_over_area_and_holds_when_it_stops() -> None:
    s = signal(Effect("fill", 100, 360, {"in_m3_h": 100, "out_m3_h": 20, "area_m2": 40}))
    v = s.values(T)
    assert v[100] == 5.0
    # 80 m³/h over 40 m² = 2 m/h: 0.2 m in the 360 s it runs
    assert np.isclose(v[460], 5.2) and np.isclose(v[599], 5.2)
    assert np.isclose(v[280], 5.1)


def test_ramp_step_and_drift() -> None:
    ramp = signal(Effect("ramp", 100, None, {"to": 9.0, "over_s": 200})).values(T)
    assert ramp[100] == 5.0 and np.isclose(ramp[200], 7.0) and ramp[400] == 9.0
    step = signal(Effect("step", 50, 10, {"to": 8.0})).values(T)
    assert step[49] == 5.0 and step[50] == 8.0 and step[59] == 8.0 and step[60] == 5.0
    drift = signal(Effect("drift", 0, None, {"per_h": 36.0})).values(T)
    assert np.isclose(drift[100], 6.0)


def test_values_stay_inside_the_instrument_range_unless_a_fault_says_otherwise() -> None:
    v = signal(Effect("ramp", 0, None, {"to": 50.0, "over_s": 10})).values(T)
    assert v.max() == 10.0
    v = signal(Effect("out_of_range", 100, 50, {"value": 12.5})).values(T)
    assert v[120] == 12.5 and v[200] == 5.0


def test_leak_plume_rises_then_decays_after_isolation() -> None:
    s = signal(Effect("leak", 60, None, {"peak": 4.0, "rise_s": 30, "isolate_after_s": 120,
                                         "decay_s": 60, "turbulence": 0.0}))
    v = s.values(T)
    assert v[59] == 5.0
    assert np.isclose(v[90], 5.0 + 4.0 * (1 - np.exp(-1)))
    top = 5.0 + 4.0 * (1 - np.exp(-4))
    assert np.isclose(v[180], top)
    assert np.isclose(v[240], 5.0 + (top - 5.0) * np.exp(-1))


def test_clog_creeps_with_a_pulse_cleaning_sawtooth() -> None:
    s = signal(Effect("clog", 0, None, {"creep_per_h": 36.0, "pulse_every_s": 100,
                                        "pulse_drop": 1.0}))
    v = s.values(T)
    assert np.isclose(v[50], 5.0 + 0.5 + 0.5)     # creep 0.5, half way up the tooth
    assert v[100] < v[99]                          # the pulse: a drop
    assert np.isclose(v[100], 6.0)


def test_faults_stuck_dropout_spikes_tamper() -> None:
    base = [Effect("ramp", 0, None, {"to": 9.0, "over_s": 600})]
    stuck = signal(*base, Effect("stuck", 100, 100)).values(T)
    assert np.all(stuck[100:200] == stuck[100]) and stuck[250] > stuck[100]
    drop = signal(Effect("dropout", 10, 5)).values(T)
    assert np.isnan(drop[10:15]).all() and not np.isnan(drop[15])
    spikes = signal(Effect("spikes", 0, None, {"every_s": 60, "height": 3.0})).values(T)
    assert spikes[60] == 8.0 and spikes[61] == 5.0
    tamper = signal(Effect("tamper", 30, None, {})).values(T)
    assert tamper[29] == 5.0 and tamper[30] == 0.0


def test_recorded_series_holds_between_samples_and_has_no_value_in_gaps() -> None:
    rec = Recorded(np.array([0.0, 10.0, 20.0, 100.0]), np.array([1.0, np.nan, 3.0, 4.0]),
                   gap_s=30.0)
    v = signal(recorded=rec).values(np.array([0.0, 5.0, 10.0, 25.0, 60.0, 100.0, 200.0]))
    assert v[0] == 1.0 and v[1] == 1.0
    assert np.isnan(v[2])                       # a missing-value marker
    assert v[3] == 3.0
    assert np.isnan(v[4])                       # 40 s after the last sample: a gap
    assert v[5] == 4.0 and np.isnan(v[6])
