"""The operator console in a real browser (Debian's Chromium, headless, driven by Playwright):
alarms appear live in priority order, an operator acknowledges one and registers it as a
hazard, and a change made elsewhere in the register shows up without a reload. A screenshot
is saved as a test artifact (``$HAZGW_TEST_ARTIFACTS``, default ``var/test-artifacts``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from playwright.async_api import Page, async_playwright, expect

from alerting.batch import ReadingBatch
from edge.clock import ScaledClock
from edge.mqtt import MqttSettings
from edge.settings import EdgeSettings
from edge.sim.scenario import load_scenario
from gateway.api.app import create_app
from gateway.api.live import LiveFeed
from gateway.app import run_edge, run_gateway
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.settings import ApiSettings, ApiUser, InfluxSettings, Settings
from gateway.sim.demo import on_loopback
from gateway.sim.ports import free_port
from gateway.sim.serve import run_simulator
from gateway.site import load_site
from gateway.store.models import Database
from gateway.store.register import Register
from gateway.stream.core import Core
from tests.gateway.api.test_api import hashed
from tests.services import Server

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("HAZGW_TEST_ARTIFACTS", "var/test-artifacts"))
TOKENS = hashed({"op": ApiUser(name="op.liu", role="operator"),
                 "sm": ApiUser(name="sm.sun", role="safety_manager")})
CHROMIUM = "/usr/bin/chromium"


@asynccontextmanager
async def console(demo_config_path: Path, tmp_path: Path,
                  ) -> AsyncIterator[tuple[Core, Register, str]]:
    """A core on the demo plant with the API and console on a free loopback port."""
    site = load_site(demo_config_path)
    db = Database(str(tmp_path / "console.sqlite3"))
    register = Register(db)
    async with BatchingWriter(NullSink()) as writer:
        core = Core(site, writer)
        feed = LiveFeed(core.enterprise)
        core.alarm_sinks.append(feed)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(
            create_app(core, register, TOKENS, None, feed, None), host="127.0.0.1", port=port,
            log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve())
        for _ in range(100):                      # bounded: 5 s
            if server.started:
                break
            await asyncio.sleep(0.05)
        try:
            yield core, register, f"http://127.0.0.1:{port}"
        finally:
            feed.close()
            server.should_exit = True
            await task
    db.close()


async def readings(core: Core, values: dict[str, float], quality: int = 0) -> None:
    ids = np.array(list(values))
    n = len(ids)
    await core.process(ReadingBatch(core.table.index(ids), np.full(n, int(time.time() * 1000)),
                                    np.array(list(values.values())),
                                    np.full(n, quality, np.uint8)))


async def alarm_rows(page: Page) -> list[str]:
    rows: list[str] = await page.eval_on_selector_all("#alarms tbody tr",
                                                      "rs => rs.map(r => r.dataset.alarm)")
    return rows


async def test_console_live_alarms_acknowledge_and_register(demo_config_path: Path,
                                                             tmp_path: Path) -> None:
    async with console(demo_config_path, tmp_path) as (core, register, url), \
            async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--autoplay-policy=no-user-gesture-required"])
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900},
                                          locale="en-GB")
            await page.goto(f"{url}/console/")
            await page.fill("#token", "op")
            await page.click("#signin")
            await page.wait_for_selector("#live.on")
            assert await page.is_visible("#no-alarms")
            # the token lives with the tab, not in the profile
            assert await page.evaluate("localStorage.getItem('hazgw.token')") is None
            assert await page.evaluate("sessionStorage.getItem('hazgw.token')") == "op"

            # a combustible L1, a combustible L2 and a toxic L2 arrive while the page is open
            await readings(core, {"GT102": 25.0, "GT101": 60.0, "AT201": 3.0})
            await page.wait_for_selector('tr[data-alarm="GT102:process"]')
            # L2 before L1, toxic before combustible at the same level (and the dike's 2oo2
            # vote, both its detectors being in alarm)
            rows = await alarm_rows(page)
            assert [r for r in rows if r.endswith(":process")] == \
                ["AT201:process", "GT101:process", "GT102:process"]
            assert "dike_A_2oo2:vote" in rows
            # the banner names the most urgent, the sound plays, the tab counts them
            await expect(page.locator("#banner")).to_be_visible()
            await expect(page.locator("#banner-text")).to_contain_text("Tank room east")
            await page.wait_for_function(
                "!document.querySelector('#alarm-sound').paused", timeout=10_000)
            assert (await page.title()).startswith("(4) Operator console")
            await page.click("#silence")
            await expect(page.locator("#silence")).to_have_text("Sound silenced")
            assert await page.evaluate("document.querySelector('#alarm-sound').paused")
            # a new high alarm after the silence sounds again (chlorine, west: L1)
            await readings(core, {"AT202": 1.5})
            await expect(page.locator("#silence")).to_have_text("Silence")
            await page.wait_for_function(
                "!document.querySelector('#alarm-sound').paused", timeout=10_000)
            row = 'tr[data-alarm="AT201:process"]'
            assert "L2" in await page.inner_text(f"{row} td.level")
            assert await page.inner_text(f"{row} td.state") == "unacknowledged"

            await page.click(f"{row} button.ack")
            await expect(page.locator(f"{row} td.state")).to_have_text("acknowledged")

            # register the toxic alarm as a hazard from its row
            await page.click(f"{row} button.register")
            await page.fill("#dialog input[name=title_col]", "Chlorine leak at T-201 valve")
            # an emergency alarm proposes a major hazard: this one is registered as general
            assert await page.input_value("#dialog select[name=level]") == "major"
            await page.select_option("#dialog select[name=level]", "general")
            await page.click("#dialog-ok")
            entry_row = '#register tbody tr:has-text("Chlorine leak at T-201 valve")'
            await page.wait_for_selector(entry_row)
            assert await page.inner_text(f"{entry_row} td.entry-state") == "registered"
            [entry] = register.all_entries()
            assert (entry.hazard_source, entry.point, entry.created_by) == \
                ("chlorine_store", "AT201", "op.liu")

            # a safety manager starts the rectification elsewhere: the page follows by itself
            async with httpx.AsyncClient(base_url=url) as client:
                r = await client.post(f"/register/{entry.id}/transition",
                                      json={"action": "start"},
                                      headers={"Authorization": "Bearer sm"})
                assert r.status_code == 200, r.text
            await expect(page.locator(f"{entry_row} td.entry-state")).to_have_text("rectifying")
            await page.click(entry_row)
            await page.wait_for_selector("#entry li:has-text('sm.sun')")

            # shelve the L1 with a reason, comment on the L2
            await page.click('tr[data-alarm="GT102:process"] button.shelve')
            await page.fill("#dialog input[name=reason]", "detector under calibration")
            await page.click("#dialog-ok")
            await expect(page.locator('tr[data-alarm="GT102:process"] td.state')).to_have_text(
                "shelved")
            # the L2 gas alarm is not the operator's to shelve: the policy says so
            await page.click('tr[data-alarm="GT101:process"] button.shelve')
            await page.fill("#dialog input[name=reason]", "nuisance")
            await page.click("#dialog-ok")
            await expect(page.locator("#toast")).to_contain_text(
                "may not shelve a GB/T 50493 second-level alarm")
            assert await page.inner_text('tr[data-alarm="GT101:process"] td.state') == \
                "unacknowledged"
            # unshelve from the row: back, unacknowledged
            await page.click('tr[data-alarm="GT102:process"] button.unshelve')
            await expect(page.locator('tr[data-alarm="GT102:process"] td.state')).to_have_text(
                "unacknowledged")
            # the gas L2 falls back to L1: the latched row keeps L2 with the level now beside
            await readings(core, {"GT101": 30.0})
            await expect(page.locator('tr[data-alarm="GT101:process"] td.level')).to_have_text(
                "L2 (second level) · now L1 (first level)")
            await page.click('tr[data-alarm="GT101:process"] button.comment')
            await page.fill("#dialog textarea[name=text]", "field check sent")
            await page.click("#dialog-ok")
            await expect(page.locator("#toast")).to_have_text(
                "Comment saved: Sphere V-101 manifold")

            # the chlorine PLC stops answering: one row for the device, its points listed,
            # no fault row per point (ISA-18.2 flood prevention)
            await readings(core, {"T201_level": np.nan, "T201_press": np.nan,
                                  "T201_temp": np.nan, "AT202": np.nan}, quality=3)
            device = 'tr[data-alarm="edge-01/plc-chlorine:device"]'
            await page.wait_for_selector(device)
            assert "Tank T-201 level, Tank T-201 pressure, Tank T-201 temperature" in \
                await page.inner_text(f"{device} td.point")
            assert await page.inner_text(f"{device} td.level") == "off line"
            rows = await alarm_rows(page)
            assert not [r for r in rows if r.endswith(":fault") or r.endswith(":stale")], rows

            # point detail with its limits and recent values
            await page.click(f"{row} td.point")
            await page.wait_for_selector("#detail-point:has-text('AT201')")
            assert "hi 1, hihi 2" in await page.inner_text("#detail dl")

            await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

            await page.click("#lang")
            assert await page.inner_text("#alarms thead th >> nth=0") == "优先级"
            assert await page.inner_text(f"{row} td.state") == "已确认"
            await page.screenshot(path=str(ARTIFACTS / "console-zh.png"), full_page=True)
        finally:
            await browser.close()


async def test_live_stream_needs_a_token_and_the_page_rejects_a_bad_one(
        demo_config_path: Path, tmp_path: Path) -> None:
    async with console(demo_config_path, tmp_path) as (_, _, url):
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/live")).status_code == 401
            assert (await client.get("/live?token=nope")).status_code == 401
            assert (await client.get("/console/")).headers["content-type"].startswith(
                "text/html")
            me = (await client.get("/me", headers={"Authorization": "Bearer op"})).json()
            assert me["role"] == "operator" and "acknowledge" in me["may"]
            assert "out_of_service" not in me["may"]
            trend = await client.get("/points/NOPE/trend", headers={"Authorization": "Bearer op"})
            assert trend.status_code == 404
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = await browser.new_page()
                await page.goto(f"{url}/console/")
                await page.fill("#token", "wrong")
                await page.click("#signin")
                await page.wait_for_selector("#login-error:has-text('not accepted')")
                assert await page.is_visible("#login")
            finally:
                await browser.close()


async def test_a_scenario_alarm_reaches_the_console_through_the_whole_stack(
        demo_config_path: Path, mosquitto_server: Server, tmp_path: Path) -> None:
    """The toxic-leak scenario at 20×: simulator → Modbus → edge → Mosquitto → gateway → the
    console's live list, then acknowledged there."""
    site = on_loopback(load_site(demo_config_path))
    scenario, base = load_scenario(ROOT / "config" / "scenarios" / "toxic_leak.yaml")
    clock = ScaledClock(int(time.time() * 1000), 20.0)
    port = free_port()
    settings = Settings(
        clock=clock.spec(), database_url=str(tmp_path / "gw.sqlite3"),
        mqtt=MqttSettings(port=mosquitto_server.port, client_id="console-core"),
        influx=InfluxSettings(kind="none"),
        api=ApiSettings(port=port, tokens=TOKENS))
    stops = [asyncio.Event() for _ in range(3)]
    sim = asyncio.create_task(run_simulator(site, None, stops[0], scenario, base, clock=clock))
    core = asyncio.create_task(run_gateway(site, settings, stops[1], status_every_s=1))
    edge_settings = EdgeSettings(edge_spool_dir=tmp_path / "spool", clock=settings.clock,
                                 mqtt=settings.mqtt)
    edge = asyncio.create_task(run_edge(site, edge_settings, stops[2]))
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = await browser.new_page()
                for _ in range(100):                  # bounded: the API is up within 5 s
                    try:
                        await page.goto(f"http://127.0.0.1:{port}/console/")
                        break
                    except Exception:
                        await asyncio.sleep(0.05)
                await page.fill("#token", "op")
                await page.click("#signin")
                # L1 at ~84 s of scenario time (~4 s real at 20×), L2 at ~126 s (~6 s real).
                # Acknowledge at L2: acknowledged at L1, the climb to L2 would annunciate
                # it anew, and whether that came before the check was a race.
                row = 'tr[data-alarm="AT201:process"]'
                await page.wait_for_selector(row, timeout=30_000)
                await expect(page.locator(f"{row} td.level")).to_contain_text(
                    "L2", timeout=30_000)
                await page.click(f"{row} button.ack")
                await expect(page.locator(f"{row} td.state")).to_have_text("acknowledged")
            finally:
                await browser.close()
    finally:
        for stop, task in zip(reversed(stops), (edge, core, sim), strict=True):
            stop.set()
            await task
