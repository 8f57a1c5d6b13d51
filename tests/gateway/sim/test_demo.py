"""``hazgw demo`` as a user runs it: the scripted leak raises a visible gas alarm in time,
and the daily report counts the demo's alarms afterwards (no escalation policy configured:
the alarm history is always on)."""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path

from gateway.settings import Settings
from gateway.sim.demo import DEMO_SCRIPT, run_demo
from gateway.site import load_site
from gateway.store.models import Alarm, Database
from gateway.store.report import BEIJING, report


async def test_demo_shows_the_scripted_leak_alarm_and_the_report_counts_it(
        demo_config_path: Path, tmp_path: Path) -> None:
    leak = next(e for e in DEMO_SCRIPT if e.point == "GT101")
    # GT101 passes its first-level alarm (25 %LEL), then its second (50 %LEL), this many
    # seconds into the demo:
    t_l1 = leak.start_s + leak.rise_s * 25 / leak.peak
    t_l2 = leak.start_s + leak.rise_s * 50 / leak.peak
    assert t_l2 < 60
    out = io.StringIO()
    lp = tmp_path / "demo.lp"
    site = load_site(demo_config_path)
    assert not (site.escalation.default or site.escalation.sources)
    url = str(tmp_path / "hazgw.sqlite3")
    counts = await run_demo(site, duration_s=t_l2 + 3, lp_path=lp, out=out, status_every_s=2,
                            settings=Settings(database_url=url))
    text = out.getvalue()
    lines = text.splitlines()
    assert any("ACTIVATE" in line and "GT101:process" in line and "GB/T 50493 L1" in line
               for line in lines), text
    assert any("RAISE" in line and "GT101:process" in line and "GB/T 50493 L2" in line
               for line in lines), text
    assert t_l1 < t_l2 and counts["readings"] > 0 and counts["malformed"] == 0
    body = lp.read_text()
    assert "alarm_event," in body and "point=GT101" in body
    assert body.count("\n") == counts["points_written"]
    # every annunciated activation the terminal showed is one occurrence in the history
    shown = {m.group(1) for line in lines
             if (m := re.search(r"(?:ACTIVATE|CHATTERING)\s+(\S+)", line))}
    db = Database(url)
    try:
        with db.session() as s:
            rows = s.query(Alarm).all()
        assert {r.alarm_id for r in rows} == shown
        gt = next(r for r in rows if r.alarm_id == "GT101:process")
        assert gt.level_name == "HH"
        day = datetime.fromtimestamp(gt.annunciated_ms / 1000, BEIJING).date()
        rep = report(db, site.enterprise.code, len(site.enterprise.points()), day, None)
        assert rep["alarms"]["count"] == sum(
            datetime.fromtimestamp(r.annunciated_ms / 1000, BEIJING).date() == day
            for r in rows) >= 1
    finally:
        db.close()
