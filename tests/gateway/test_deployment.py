"""A deployment of many enterprises: a directory of site files, validated file by file, every
error by file and path, and what a deployment needs beyond one site (division, industry,
one file per enterprise code)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.cli import main
from gateway.deployment import load_deployment
from gateway.site import ConfigError

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo" / "plant.yaml"


def enterprise_file(d: Path, name: str, code: str, **enterprise: object) -> Path:
    doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    doc["enterprise"].update({"code": code, "division": "320582", "industry": "C2614",
                              **enterprise})
    doc["enterprise"] = {k: v for k, v in doc["enterprise"].items() if v is not None}
    p = d / name
    p.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return p


def codes(n: int) -> list[str]:
    return [f"91320582MA1W3K4X{i:02d}" for i in range(n)]


def test_a_directory_of_enterprises_loads_by_code(tmp_path: Path) -> None:
    for i, code in enumerate(codes(3)):
        enterprise_file(tmp_path, f"e{i}.yaml", code,
                        division="320582" if i < 2 else "320281")
    (tmp_path / "README.txt").write_text("not a site file")
    dep = load_deployment(tmp_path)
    assert sorted(dep.sites) == codes(3)
    assert dep.by_division() == {"320582": codes(3)[:2], "320281": codes(3)[2:]}
    assert dep.files[codes(3)[2]].name == "e2.yaml"


def test_every_problem_of_every_file_is_listed_by_file_and_path(tmp_path: Path) -> None:
    a, b, c = codes(3)
    enterprise_file(tmp_path, "good.yaml", a)
    enterprise_file(tmp_path, "no_division.yaml", b, division=None, industry="B2614")
    enterprise_file(tmp_path, "same_code.yaml", a)
    enterprise_file(tmp_path, "bad_division.yaml", c, division="990101")
    (tmp_path / "broken.yaml").write_text("enterprise: [\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_deployment(tmp_path)
    lines = err.value.errors
    assert any(x.startswith("no_division.yaml: enterprise.division: required in a "
                            "deployment") for x in lines)
    assert any(x.startswith("no_division.yaml: enterprise.industry:")
               and "belongs to section C, not B" in x for x in lines)
    assert "same_code.yaml: enterprise.code: 91320582MA1W3K4X00 is already the enterprise " \
           "of good.yaml" in lines
    assert any(x.startswith("bad_division.yaml: enterprise.division:")
               and "99 is not a province-level code" in x for x in lines)
    assert any(x.startswith("broken.yaml: ") and "not valid YAML" in x for x in lines)
    assert not any(x.startswith("good.yaml") for x in lines)


def test_an_empty_directory_and_a_missing_one_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no site files"):
        load_deployment(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        load_deployment(tmp_path / "nowhere")


def test_check_config_takes_a_deployment_directory(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for i, code in enumerate(codes(2)):
        enterprise_file(tmp_path, f"e{i}.yaml", code)
    assert main(["check-config", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path}: OK, 2 enterprise(s) in 1 division(s)" in out
    assert "e1.yaml: 91320582MA1W3K4X01" in out and "industry C2614" in out
    enterprise_file(tmp_path, "e2.yaml", codes(1)[0], industry="C99")
    assert main(["check-config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: 2 error(s)" in err and "e2.yaml: enterprise.industry:" in err
    assert "e2.yaml: enterprise.code: 91320582MA1W3K4X00 is already" in err
