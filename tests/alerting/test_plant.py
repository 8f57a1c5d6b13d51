from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from alerting.plant import Point, Substance
from gateway.site import format_errors


def errors_of(**fields: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Point.model_validate(fields)
    return format_errors(info.value)


COMBUSTIBLE = {"kind": "combustible_gas", "unit": "%LEL", "range_low": 0, "range_high": 100}
CHLORINE: dict[str, Any] = {"kind": "toxic_gas", "unit": "mg/m3", "range_low": 0, "range_high": 30,
            "gas": {"substance": "chlorine", "oel": 1, "oel_basis": "MAC", "idlh": 88}}


def test_combustible_limits_at_the_gb_maximum_are_accepted() -> None:
    p = Point.model_validate({**COMBUSTIBLE, "hi": 25, "hihi": 50})
    assert (p.hi, p.hihi) == (25, 50)


def test_combustible_limits_above_gb_are_rejected_with_both_fields() -> None:
    errs = errors_of(**COMBUSTIBLE, hi=30, hihi=60)
    assert any(e.startswith("hi: GB/T 50493 first-level alarm must be <= 25") for e in errs)
    assert any(e.startswith("hihi: GB/T 50493 second-level alarm must be <= 50") for e in errs)


def test_gas_point_needs_both_levels() -> None:
    errs = errors_of(**COMBUSTIBLE, hi=20)
    assert errs == ["hihi: GB/T 50493 requires a second-level alarm (hihi) on gas points"]


def test_opting_out_of_gbt50493_needs_a_reason() -> None:
    assert errors_of(**COMBUSTIBLE, hi=30, hihi=60, gbt50493=False) == [
        "gbt50493_exempt_reason: required when gbt50493 is false"]
    p = Point.model_validate({**COMBUSTIBLE, "hi": 30, "hihi": 60, "gbt50493": False,
                              "gbt50493_exempt_reason": "process analyser, not a GDS point"})
    assert p.hi == 30


def test_toxic_limits_follow_oel() -> None:
    Point.model_validate({**CHLORINE, "hi": 1, "hihi": 2})
    errs = errors_of(**CHLORINE, hi=1.5, hihi=2.5)
    assert any(e.startswith("hi: GB/T 50493 first-level alarm must be <= 1 mg/m3 "
                            "(100 % / 200 % MAC)") for e in errs)
    assert any(e.startswith("hihi:") for e in errs)


def test_toxic_limits_by_idlh_when_range_is_insufficient() -> None:
    gas = {**CHLORINE["gas"], "range_insufficient": True}
    # 5 % / 10 % of IDLH 88 = 4.4 / 8.8
    Point.model_validate({**CHLORINE, "gas": gas, "hi": 4.4, "hihi": 8.8})
    errs = errors_of(**{**CHLORINE, "gas": gas}, hi=5, hihi=8.8)
    assert len(errs) == 1 and errs[0].startswith("hi: GB/T 50493 first-level alarm must be <= 4.4")


def test_toxic_point_without_gas_info_is_rejected() -> None:
    errs = errors_of(kind="toxic_gas", unit="ppm", range_low=0, range_high=100, hi=5, hihi=10)
    assert errs[0].startswith("gas: toxic gas points need gas.substance")


def test_limit_order_and_range_are_checked_together() -> None:
    errs = errors_of(kind="level", unit="m", range_low=0, range_high=10, lo=2, hi=9, hihi=8,
                     lolo=-1)
    assert "lolo: -1.0 is outside the instrument range [0.0, 10.0]" in errs
    assert "hi: must be below hihi (9.0 >= 8.0)" in errs


def test_default_deadband_is_percent_of_span_by_kind() -> None:
    p = Point.model_validate({"kind": "level", "unit": "m", "range_low": 0, "range_high": 12})
    assert p.effective_deadband == pytest.approx(0.6)  # 5 % of 12 m
    q = Point.model_validate({"kind": "level", "unit": "m", "range_low": 0, "range_high": 12,
                              "deadband": 0.1})
    assert q.effective_deadband == 0.1


def test_unknown_substance_needs_q_and_beta() -> None:
    with pytest.raises(ValidationError, match="not in the built-in GB 18218 table"):
        Substance.model_validate({"substance": "unobtainium", "quantity_t": 3})
    s = Substance.model_validate({"substance": "unobtainium", "quantity_t": 3,
                                  "critical_quantity_t": 10, "beta": 2})
    assert s.inventory().critical_quantity_t == 10


def test_suppression_must_name_a_known_point() -> None:
    from gateway.site import ConfigError, parse_site
    from tests.alerting.helpers import PERSONS

    data = {"enterprise": {
        "code": "91320582MA1W3K4X5R", "name": "x",
        "hazard_sources": {"s": {
            "name": "s", "unit_type": "storage", "exposed_population_500m": 0,
            "responsible_persons": PERSONS,
            "equipment": {"e": {"kind": "area", "points": {
                "F": {"kind": "flow", "unit": "m3/h", "range_low": 0, "range_high": 10,
                      "lo": 1, "suppress_when": {"point": "NOPE", "below": 0.5}}}}}}}}}
    with pytest.raises(ConfigError) as info:
        parse_site(data)
    assert info.value.errors == [
        "enterprise.hazard_sources.s.equipment.e.points.F.suppress_when.point: "
        "unknown point 'NOPE'"]
