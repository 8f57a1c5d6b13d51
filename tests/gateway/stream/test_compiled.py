"""Compiling the plant in a child process, as ``hazgw run`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.site import ConfigError, load_site
from gateway.stream.compiled import compile_in_child, compile_site


def test_child_compilation_matches_compiling_here(demo_config_path: Path) -> None:
    here = compile_site(load_site(demo_config_path))
    there = compile_in_child(load_site, str(demo_config_path))
    assert there.enterprise == here.enterprise == "91320582MA1W3K4X5R"
    assert there.table.ids.tolist() == here.table.ids.tolist()
    for column in ("hi", "hihi", "deadband", "on_ms", "trend_k", "roc_rise"):
        np.testing.assert_array_equal(getattr(there.table, column), getattr(here.table, column))
    assert [v.name for v in there.table.votes] == ["dike_A_2oo2"]


def test_config_errors_from_the_child_are_the_same_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("enterprise: {code: nope}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        compile_in_child(load_site, str(bad))
    assert any(e.startswith("enterprise.code:") for e in info.value.errors)
    assert any(e.startswith("enterprise.name:") for e in info.value.errors)


def test_hazgw_run_stops_on_a_bad_config_with_every_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("enterprise: {code: nope}\n", encoding="utf-8")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error(s)" in err and "enterprise.code:" in err and "enterprise.name:" in err
