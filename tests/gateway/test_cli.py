"""Every CLI error path is one readable line and an exit status, not a traceback."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.sim.ports import free_port


def test_report_without_influxdb_says_so_in_one_line_and_still_reports(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen before: a 60-line traceback."""
    monkeypatch.setenv("HAZGW_INFLUX__URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("HAZGW_DATABASE_URL", str(tmp_path / "r.sqlite3"))
    assert main(["report", "--day", "2026-11-30"]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "cannot say which points were on line" in err
    assert json.loads(out)["points"]["online"] is None


def test_settings_that_are_not_json_are_one_line(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen before: a 14-frame pydantic traceback for HAZGW_API__TOKENS='{bad'."""
    monkeypatch.setenv("HAZGW_API__TOKENS", "{bad")
    with pytest.raises(SystemExit) as stop:
        main(["run"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("environment settings (HAZGW_*): ")


def _parsers(p: argparse.ArgumentParser, path: str = "hazgw",
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_command_and_option_has_a_help_line_without_markup() -> None:
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}"
               for path, p in _parsers(build_parser()) for a in p._actions
               if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert missing == []
    for path, p in _parsers(build_parser()):
        text = p.format_help()
        assert "``" not in text, path
        assert p.description, f"{path}: no description"
