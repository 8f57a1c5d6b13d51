"""``hazgw demo`` as a user runs it: the scripted leak raises a visible gas alarm in time."""

from __future__ import annotations

import io
from pathlib import Path

from gateway.sim.demo import DEMO_SCRIPT, run_demo
from gateway.site import load_site


async def test_demo_shows_the_scripted_leak_alarm_within_the_first_minute(
        demo_config_path: Path, tmp_path: Path) -> None:
    leak = next(e for e in DEMO_SCRIPT if e.point == "GT101")
    # GT101 passes its first-level alarm (25 %LEL) this many seconds into the demo:
    t_l1 = leak.start_s + leak.rise_s * 25 / leak.peak
    assert t_l1 < 60
    out = io.StringIO()
    lp = tmp_path / "demo.lp"
    counts = await run_demo(load_site(demo_config_path), duration_s=t_l1 + 3, lp_path=lp,
                            out=out, status_every_s=2)
    text = out.getvalue()
    assert any("ACTIVATE" in line and "GT101:process" in line and "GB/T 50493 L1" in line
               for line in text.splitlines()), text
    assert counts["readings"] > 0 and counts["malformed"] == 0
    body = lp.read_text()
    assert "alarm_event," in body and "point=GT101" in body
    assert body.count("\n") == counts["points_written"]
