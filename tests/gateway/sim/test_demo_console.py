"""``hazgw demo`` opens the control room: the demo's console, driven in Debian's Chromium
(headless, Playwright) during the shipped ``control_room`` scenario at 5×. What a person sees
is checked: the overview tiles, the alarm banner with its sound played and silenced (the
silence logged), the unacknowledged count in the tab title, filters and search, names and
units, the latched level, one row for the PLC off line, the trend with a time axis, the
register workflow through to closed, 挂牌督办 by the regulator, the shift log and 中文 mode.
Screenshots are kept as test artifacts (``$HAZGW_TEST_ARTIFACTS``, default
``var/test-artifacts``)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import select

from edge.sim.scenario import load_scenario
from gateway.settings import Settings
from gateway.sim.demo import DemoConsole, run_demo
from gateway.sim.ports import free_port
from gateway.site import load_site
from gateway.store.models import AuditRecord, Database
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("HAZGW_TEST_ARTIFACTS", "var/test-artifacts"))
CHROMIUM = "/usr/bin/chromium"
SPEED = 5.0
# bounded: the scenario's events fall within its first 240 simulated s (48 s at 5×)
WAIT_MS = 60_000


@asynccontextmanager
async def demo(tmp_path: Path) -> AsyncIterator[tuple[DemoConsole, io.StringIO, str]]:
    """The demo with its console on a free port, the control-room scenario at 5× (made long
    enough for the test: it ends when the test does)."""
    site = load_site(ROOT / "config" / "demo" / "plant.yaml")
    scenario, base = load_scenario(ROOT / "config" / "scenarios" / "control_room.yaml")
    scenario = scenario.model_copy(update={"duration_s": 3600})
    console = DemoConsole(port=free_port())
    out = io.StringIO()
    stop = asyncio.Event()
    db_url = str(tmp_path / "demo.sqlite3")
    task = asyncio.create_task(run_demo(
        site, 600, tmp_path / "demo" / "readings.lp", out, 2.0, Settings(database_url=db_url),
        scenario, base, SPEED, console, stop))
    try:
        await wait_until(lambda: "The control room is open" in out.getvalue() or task.done(),
                         timeout_s=60)
        assert not task.done(), out.getvalue()
        yield console, out, db_url
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def signed_in(browser: Browser, console: DemoConsole, who: str) -> Page:
    page = await browser.new_page(viewport={"width": 1920, "height": 1080}, locale="en-GB")
    await page.goto(console.url(who))
    await page.wait_for_selector("#live.on")
    return page


async def shot(page: Page, name: str) -> None:
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def test_demo_opens_the_control_room_and_it_works_in_a_browser(tmp_path: Path) -> None:
    async with demo(tmp_path) as (console, out, db_url), async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--autoplay-policy=no-user-gesture-required"])
        try:
            # the set-up ends by printing the console and a sign-in link per demo user
            assert console.url() in out.getvalue()
            assert console.url("operator") in out.getvalue()
            op = await signed_in(browser, console, "operator")
            # the token left the address bar for the tab's storage
            assert "#token" not in op.url
            assert await op.title() == "Operator console — Demo Fine Chemicals Co., Ltd."

            # overview: a tile per hazard source with its name and GB 18218 level
            tiles = op.locator("#overview .tile")
            await expect(tiles).to_have_count(3)
            lpg = op.locator('.tile[data-source="lpg_farm"]')
            await expect(lpg.locator(".tile-name")).to_have_text(
                "LPG spherical-tank farm (fire dike A)")
            assert "GB 18218" in await lpg.locator(".tile-level").inner_text()
            await expect(op.locator('.tile[data-source="al_polishing"] .tile-level')).to_have_text(
                "not a major hazard source")

            # the leak at GT101: banner, sound, the count in the tab title; names and units
            gt = op.locator('tr[data-alarm="GT101:process"]')
            await expect(gt).to_be_visible(timeout=WAIT_MS)
            await expect(op.locator("#banner")).to_be_visible()
            await expect(op.locator("#banner-text")).to_contain_text("Sphere V-101 manifold")
            await wait_until_js(op, "Number(document.querySelector('#alarm-sound').dataset"
                                    ".plays || 0) >= 1")
            assert re.match(r"^\(\d+\) Operator console", await op.title())
            await expect(gt.locator("td.point")).to_contain_text("Sphere V-101 manifold")
            await expect(gt.locator("td.value")).to_contain_text("%LEL")
            # the latched L2 (45 s of scenario time), the level now beside it once it falls
            await expect(gt.locator("td.level")).to_contain_text("L2 (second level)",
                                                                 timeout=WAIT_MS)
            await expect(lpg).to_have_class(re.compile("status-red"))
            await shot(op, "demo-overview-leak.png")

            # silence (the audit log says who; a new alarm after it sounds again, which is
            # why the sound itself is checked on a core the test drives, test_console_api)
            await op.click("#silence")

            # filters and search
            await op.select_option("#f-source", "chlorine_store")
            await expect(op.locator('tr[data-alarm="GT101:process"]')).to_have_count(0)
            await op.select_option("#f-source", "")
            await op.fill("#f-q", "manifold")
            rows = op.locator("#alarms tbody tr")
            await expect(rows).to_have_count(1)
            await op.click("#f-clear")
            await op.click('.tile[data-source="al_polishing"]')
            await expect(op.locator('#alarms tbody tr:not([data-alarm^="DC301"])')).to_have_count(0)
            await op.click('.tile[data-source="al_polishing"]')

            # the trend: a time axis, the unit, the limits
            await gt.locator("td.point").click()
            await expect(op.locator("#trend text.xtick").first).to_be_visible(timeout=10_000)
            assert await op.locator("#trend text.unit").text_content() == "%LEL"
            assert await op.locator("#trend text.limit-label").count() == 2
            await expect(op.locator("#alarm-history")).to_contain_text("L1 (first level)")

            # the chlorine PLC off line (200 s of scenario time): one row, its points named
            device = op.locator('tr[data-alarm="edge-01/plc-chlorine:device"]')
            await expect(device).to_be_visible(timeout=WAIT_MS)
            await expect(device.locator("td.point")).to_contain_text("Tank T-201 level")
            await expect(device.locator("td.level")).to_have_text("off line")
            assert not await op.locator('tr[data-alarm^="T201_level:"]').count()
            await shot(op, "demo-alarms-during-leak.png")

            # register from the alarm: a meaningful default title
            await gt.locator("button.register").click()
            title = await op.input_value("#dialog input[name=title_col]")
            assert title.startswith("Sphere V-101 manifold (GT101): L2"), title
            await op.click("#dialog-ok")
            # (the gateway may open one of its own for the alarm: unhandled too long)
            entry = op.locator('#register tbody tr:has-text("Sphere V-101 manifold (GT101): L2")')
            await expect(entry).to_have_count(1)
            await expect(entry.locator("td.entry-state")).to_have_text("registered")

            # the shift log: a handover records the alarms standing
            await op.click("#handover")
            await op.fill("#dialog textarea[name=note]", "GT101 leak isolated, watch AT201")
            await op.click("#dialog-ok")
            await expect(op.locator("#shift li.shift-note")).to_contain_text("alarms standing")

            # the safety manager walks the entry to closed
            sm = await signed_in(browser, console, "safety manager")
            await sm.locator('#register tbody tr:has-text("(GT101): L2")').click()
            await sm.click('#entry button[data-step="start"]')
            await sm.fill("#dialog textarea[name=measures]", "replace the manifold gasket")
            await sm.fill("#dialog input[name=funds_cny]", "12000")
            await sm.fill("#dialog input[name=responsible_person]", "Wang Qiang")
            await sm.fill("#dialog input[name=deadline_ms]", "2099-12-31T17:00")
            await sm.fill("#dialog textarea[name=contingency_plan]", "LPG leak plan v3")
            await sm.click("#dialog-ok")
            await expect(sm.locator("#entry-title .entry-state")).to_have_text("rectifying")
            await sm.click('#entry button[data-step="submit"]')
            await sm.click("#dialog-ok")
            await expect(sm.locator("#entry-title .entry-state")).to_have_text(
                "pending verification")
            await sm.click('#entry button[data-step="verify_pass"]')
            await sm.fill("#dialog input[name=verifier]", "Li Na")
            await sm.fill("#dialog textarea[name=text]", "gasket replaced, leak test passed")
            await sm.click("#dialog-ok")
            await expect(sm.locator("#entry-title .entry-state")).to_have_text("closed")
            await expect(sm.locator("#entry-history")).to_contain_text("verified, closed")
            await shot(sm, "demo-register-workflow.png")

            # a second entry, listed for supervision by the regulator (挂牌督办)
            await op.locator('tr[data-alarm="AT201:process"] button.register').click(
                timeout=WAIT_MS)
            await op.click("#dialog-ok")
            reg = await signed_in(browser, console, "regulator")
            assert re.match(r"^(\(\d+\) )?Regulator's view", await reg.title())
            assert not await reg.locator("#alarms button.ack").count()
            await reg.locator('#register tbody tr:has-text("(AT201): L")').click()
            await reg.click('#entry button[data-step="supervise"]')
            await expect(reg.locator("#entry dd.entry-supervised")).to_contain_text("yes")
            await reg.click('#register-tabs button[data-tab="supervised"]')
            await expect(reg.locator('#register tbody tr:has-text("(AT201): L")')).to_have_count(1)
            await expect(reg.locator('#register tbody tr:has-text("(GT101): L2")')).to_have_count(0)

            # 中文: every label, level, state and the page title follow
            await reg.click("#lang")
            assert re.match(r"^(\(\d+\) )?监管端视图", await reg.title())
            await expect(reg.locator("#page-title")).to_have_text("监管端视图")
            await expect(reg.locator('tr[data-alarm="GT101:process"] td.level')).to_contain_text(
                "二级报警")
            await expect(reg.locator('.tile[data-source="al_polishing"] .tile-level')
                         ).to_have_text("非重大危险源")
            await expect(reg.locator("#register-tabs button.picked")).to_have_text("挂牌督办")
            await expect(reg.locator("#entry dl").first).to_contain_text("危险源")
            body = await reg.inner_text("main")
            for english in ("unacknowledged", "process", "Hazard source", "emergency",
                            "registered", "Shift log", "second level"):
                assert english not in body, english
            await shot(reg, "demo-regulator-zh.png")
        finally:
            await browser.close()
    # what the demo's escalation told the operator and the regulator, one JSON line each
    notes = tmp_path / "demo" / "notifications"
    told = [json.loads(x) for x in (notes / "operator.jsonl").read_text().splitlines()]
    assert any(m["message"]["point"] == "GT101" for m in told)
    db = Database(db_url)
    try:
        with db.session() as s:
            actions = {r.action: json.loads(r.detail) for r in s.scalars(select(AuditRecord))}
        assert "GT101:process" in actions["console.silence"]["alarms"]
        assert "shift.handover" in actions
    finally:
        db.close()


async def wait_until_js(page: Page, condition: str) -> None:
    await page.wait_for_function(condition, timeout=WAIT_MS)
