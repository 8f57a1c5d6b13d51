"""examples/maintenance: a team's test suite that runs with nothing but the installed package
(copied out of the repository, no conftest, no pytest-asyncio), and its guide, whose example
is that suite itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "maintenance"


def run_suite(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:asyncio", "-p", "no:cacheprovider",
         *args], cwd=where, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_the_guide_shows_the_suite_verbatim() -> None:
    guide = (EXAMPLE / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.S)
    assert blocks == [(EXAMPLE / "test_threshold_change.py").read_text()]


def test_the_example_suite_passes_outside_the_repository(tmp_path: Path) -> None:
    suite = shutil.copytree(EXAMPLE, tmp_path / "maintenance")
    done = run_suite(suite)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


def test_the_old_threshold_fails_with_a_readable_diff(tmp_path: Path) -> None:
    suite = shutil.copytree(EXAMPLE, tmp_path / "maintenance")
    plant = suite / "plant.yaml"
    plant.write_text(plant.read_text().replace("hi: 10.5,", "hi: 10.8,"))
    done = run_suite(suite, "-k", "overfill")
    assert done.returncode == 1, done.stdout + done.stderr
    # 10.8 m is crossed at 30 + 1.3 m / 6 m/h = 810 s; + 60 s on-delay
    assert "FAIL H on T101_level at 690s ±10s: first came at 871.0s (181.0s late)" in done.stdout
    assert "ok   HH on T101_level at 1050s ±10s" in done.stdout
