"""Docstrings name real things: every ``package.module.Name`` written in double backticks
in the product's modules resolves (a renamed or removed class makes this fail)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("alerting", "edge", "gateway")
DOTTED = re.compile(r"``((?:alerting|edge|gateway)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)``")


def references() -> list[tuple[str, str]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for name in DOTTED.findall(path.read_text()):
                out.append((str(path.relative_to(ROOT)), name))
    return out


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize(("where", "name"), references())
def test_a_dotted_name_in_a_docstring_exists(where: str, name: str) -> None:
    assert resolves(name), f"{where} names {name}, which does not exist"


def test_the_check_finds_a_wrong_name() -> None:
    assert not resolves("alerting.rules.PointTable")      # what batch.py once said
    assert resolves("alerting.table.RuleTable")
