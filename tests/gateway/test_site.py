from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import site as site_module
from gateway.cli import main
from gateway.settings import Settings
from gateway.site import ConfigError, load_site, parse_site


def demo_data(path: Path) -> dict[str, object]:
    data: dict[str, object] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def test_three_distinct_mistakes_are_all_reported_with_paths(
        demo_config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = demo_config_path.read_text(encoding="utf-8")
    # 1. a combustible L2 above 50 %LEL, 2. hi above hihi on a level, 3. an unknown key
    assert "range_low: 0, range_high: 100, hi: 20, hihi: 40," in text
    text = text.replace("range_low: 0, range_high: 100, hi: 20, hihi: 40,",
                        "range_low: 0, range_high: 100, hi: 20, hihi: 60,")
    old = ("T201_level: {kind: level, name: Tank T-201 level, unit: m, range_low: 0, "
           "range_high: 2.6, hi: 2.2, hihi: 2.35}")
    assert old in text
    text = text.replace(old, old.replace("hi: 2.2,", "hi: 2.4,"))
    text = text.replace("poll_interval_s: 1\n        registers:\n          T201_level",
                        "poll_interval_s: 1\n        pol_interval: 2\n        registers:\n"
                        "          T201_level")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["check-config", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "3 error(s)" in err
    assert ("enterprise.hazard_sources.lpg_farm.equipment.dike_A.points.GT102.hihi: "
            "GB/T 50493 second-level alarm must be <= 50 %LEL, got 60") in err
    assert ("enterprise.hazard_sources.chlorine_store.equipment.T201.points.T201_level.hi: "
            "must be below hihi (2.4 >= 2.35)") in err
    assert "edges.edge-01.modbus.plc-chlorine.pol_interval: Extra inputs are not permitted" in err


def test_check_config_prints_the_grading_summary(
        demo_config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(demo_config_path)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "32.00" in lines["lpg_farm"] and "96.00" in lines["lpg_farm"]
    assert "二级" in lines["lpg_farm"]
    assert "60.00" in lines["chlorine_store"] and "二级" in lines["chlorine_store"]
    assert "dust rules" in lines["al_polishing"]


def test_registers_must_name_defined_points(demo_config_path: Path) -> None:
    data = demo_data(demo_config_path)
    edges = data["edges"]
    assert isinstance(edges, dict)
    edges["edge-01"]["modbus"]["plc-dust"]["registers"]["NOPE"] = {"address": 9}
    edges["edge-01"]["modbus"]["plc-dust"]["registers"]["GT101"] = {"address": 10}
    with pytest.raises(ConfigError) as info:
        parse_site(data)
    assert info.value.errors == [
        "edges.edge-01.modbus.plc-dust.registers.NOPE: point 'NOPE' is not defined under "
        "enterprise",
        "edges.edge-01.modbus.plc-dust.registers.GT101: point 'GT101' is already read at "
        "edges.edge-01.modbus.plc-lpg.registers.GT101",
    ]


def test_duplicate_point_ids_across_sources_are_rejected(demo_config_path: Path) -> None:
    data = demo_data(demo_config_path)
    srcs = data["enterprise"]["hazard_sources"]  # type: ignore[index]
    srcs["chlorine_store"]["equipment"]["T201"]["points"]["V101_level"] = {
        "kind": "level", "unit": "m", "range_low": 0, "range_high": 3}
    with pytest.raises(ConfigError) as info:
        parse_site(data)
    assert info.value.errors == [
        "enterprise.hazard_sources.chlorine_store.equipment.T201.points.V101_level: point id "
        "'V101_level' is already used at hazard_sources.lpg_farm.equipment.V101.points."
        "V101_level"]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("enterprise:\n  code: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_site(bad)
    assert info.value.errors[0].startswith("line 3, column 1: not valid YAML")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_site(tmp_path / "absent.yaml")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAZGW_MQTT__PORT", "1999")
    monkeypatch.setenv("HAZGW_INFLUX__KIND", "v2")
    monkeypatch.setenv("HAZGW_INFLUX__TOKEN", "s3cret")
    s = Settings()
    assert s.mqtt.port == 1999 and s.influx.kind == "v2"
    assert s.influx.token is not None and s.influx.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_check_config_warns_by_path_when_a_window_cannot_do_what_it_says(
        demo_config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """At a 180 s poll the default 300 s trend window holds 2 samples, under the 5 it needs:
    the rule could never warn and check-config said OK. A one-hour window at a 1 s poll is
    longer than any ring holds: it is capped, and said so."""
    data: Any = demo_data(demo_config_path)
    points = data["enterprise"]["hazard_sources"]["lpg_farm"]["equipment"]["V101"]["points"]
    points["V101_press"]["trend"] = {}                     # valid: the default horizon
    points["V101_temp"]["trend"] = {"window_s": 3600}
    plc = data["edges"]["edge-01"]["modbus"]["plc-lpg"]
    plc["poll_interval_s"] = 180
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    where = "enterprise.hazard_sources.lpg_farm.equipment.V101.points"
    assert "OK, 2 warning(s)" in out
    assert (f"warning: {where}.V101_press.trend.window_s: 300 s at a 180 s poll holds 2 "
            "samples, fewer than min_samples (5): this rule can never warn (polled by "
            "edges.edge-01.modbus.plc-lpg)") in out
    assert f"warning: {where}.V101_level.trend.window_s: 120 s at a 180 s poll" in out
    plc["poll_interval_s"] = 1
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert (f"warning: {where}.V101_temp.trend.window_s: 3600 s at a 1 s poll is 3600 "
            "samples; a window holds at most 1023 here (memory budget): it covers the last "
            "1023 s (polled by edges.edge-01.modbus.plc-lpg)") in out


def test_a_json_site_is_read_fast_and_an_oversized_file_is_refused_unread(
        demo_config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen before: a valid 100 000-point file took 130 s and 3.4 GB to check (yaml.safe_load
    149 s alone); JSON (a subset of YAML) is read by orjson, YAML by libyaml's C loader."""
    data = demo_data(demo_config_path)
    as_json = tmp_path / "plant.json"
    as_json.write_text(json.dumps(data))
    assert load_site(as_json) == load_site(demo_config_path)
    assert site_module._LOADER is yaml.CSafeLoader
    monkeypatch.setattr(site_module, "MAX_SITE_BYTES", 1000)
    with pytest.raises(ConfigError) as info:
        load_site(demo_config_path)
    [error] = info.value.errors
    assert error.startswith("the file is ") and "a site file may be at most" in error


def test_a_shelving_policy_for_a_priority_that_does_not_exist_is_refused_by_path(
        demo_config_path: Path) -> None:
    data: Any = demo_data(demo_config_path)
    data["shelving"] = {"roles": {7: ["operator"]}, "max_minutes": 0}
    with pytest.raises(ConfigError) as info:
        parse_site(data)
    assert info.value.errors == ["shelving.max_minutes: Input should be greater than 0",
                                 "shelving.roles: priorities are 1..4, got [7]"]
