"""What the console reads besides alarms: the plant with names, units, levels and limits
(``/site``); standing rate and predictive rows with their rule's limit; the shift log with
the alarms standing at handover; the silence of the alarm sound in the audit log; the
translations (both languages have the same words). On a real core and SQLite/PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from alerting.batch import ReadingBatch
from gateway.api.app import create_app
from gateway.api.live import LiveFeed
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.site import load_site
from gateway.store.models import AuditRecord, Database
from gateway.store.register import Register
from gateway.stream.core import Core
from tests.gateway.api.test_api import TOKENS, as_

STATIC = Path(__file__).resolve().parents[3] / "gateway" / "api" / "static"


@pytest.fixture
async def console_api(db: Database, demo_config_path: Path,
                      ) -> AsyncIterator[tuple[httpx.AsyncClient, Core]]:
    async with BatchingWriter(NullSink()) as writer:
        core = Core(load_site(demo_config_path), writer)
        feed = LiveFeed(core.enterprise)
        app = create_app(core, Register(db), TOKENS, None, feed, None)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as c:
            yield c, core
        feed.close()


async def readings(core: Core, values: dict[str, float], ts_ms: int) -> None:
    ids = np.array(list(values))
    await core.process(ReadingBatch(core.table.index(ids), np.full(len(ids), ts_ms),
                                    np.array(list(values.values())),
                                    np.zeros(len(ids), np.uint8)))


async def test_site_gives_names_units_levels_and_limits(
        console_api: tuple[httpx.AsyncClient, Core]) -> None:
    client, _ = console_api
    assert (await client.get("/site")).status_code == 401
    site = (await client.get("/site", headers=as_("t-reg"))).json()
    assert site["name"] == "Demo Fine Chemicals Co., Ltd."
    sources = {s["id"]: s for s in site["sources"]}
    assert sources["lpg_farm"]["name"] == "LPG spherical-tank farm (fire dike A)"
    assert sources["lpg_farm"]["level"] == "二级"
    assert sources["al_polishing"]["level"] is None          # not a GB 18218 unit
    gt = site["points"]["GT101"]
    assert (gt["name"], gt["unit"], gt["kind"], gt["device"]) == \
        ("Sphere V-101 manifold", "%LEL", "combustible_gas", "edge-01/plc-lpg")
    assert gt["limits"] == {"hi": 25.0, "hihi": 50.0}
    # the rate limit as configured: per minute
    assert site["points"]["DC301_dp"]["limits"]["roc_rise"] == pytest.approx(600.0)
    assert site["equipment"]["V101"] == "LPG sphere V-101 (1000 m³)"


async def test_standing_rate_and_predictive_rows_carry_their_rules_limit(
        console_api: tuple[httpx.AsyncClient, Core]) -> None:
    client, core = console_api
    t0 = int(time.time() * 1000) - 60_000
    # ΔP climbs 300 Pa a second: far beyond 600 Pa/min, and heading for H (1800 Pa)
    for k in range(40):
        await readings(core, {"DC301_dp": 900 + 30 * k}, t0 + k * 100)
    rows = {a["alarm_id"]: a for a in
            (await client.get("/alarms", headers=as_("t-op"))).json()}
    assert rows["DC301_dp:roc"]["limit"] == pytest.approx(600.0)
    assert rows["DC301_dp:predictive"]["limit"] == pytest.approx(1800.0)


async def test_shift_log_records_the_standing_alarms_and_the_silence_is_audited(
        console_api: tuple[httpx.AsyncClient, Core], db: Database) -> None:
    client, core = console_api
    await readings(core, {"GT101": 60.0}, int(time.time() * 1000))
    note = {"on_duty": "Liu, Chen", "taking_over": "Zhao", "note": "GT101 isolated"}
    assert (await client.post("/shift-log", json=note, headers=as_("t-reg"))).status_code \
        == 403
    bad = await client.post("/shift-log", json={**note, "note": "x\x00"},
                            headers=as_("t-op"))
    assert bad.status_code == 422
    r = await client.post("/shift-log", json=note, headers=as_("t-op"))
    assert r.status_code == 201, r.text
    assert {a["alarm_id"] for a in r.json()["standing"]} >= {"GT101:process"}
    [row] = (await client.get("/shift-log", headers=as_("t-reg"))).json()
    assert (row["author"], row["on_duty"], row["taking_over"], row["note"]) == \
        ("op.liu", "Liu, Chen", "Zhao", "GT101 isolated")
    # silencing the sound: anyone who reads may, and it is on the record
    wrong: list[dict[str, object]] = [{"alarms": ["x" * 201]}, {"alarms": ["a"] * 1001},
                                      {"alarms": "GT101"}, {"alarms": [], "extra": 1}]
    for body in wrong:
        refused = await client.post("/console/silence", json=body, headers=as_("t-reg"))
        assert refused.status_code == 422, body
    r = await client.post("/console/silence", json={"alarms": ["GT101:process"]},
                          headers=as_("t-reg"))
    assert r.status_code == 200 and r.json()["silenced"] == 1
    with db.session() as s:
        records = {a.action: (a.actor, json.loads(a.detail))
                   for a in s.scalars(select(AuditRecord))}
    # refused bodies left nothing on the record
    assert records["console.silence"] == ("yjj.zhou", {"alarms": ["GT101:process"]})
    with db.session() as s:
        silences = s.scalars(select(AuditRecord).where(
            AuditRecord.action == "console.silence")).all()
    assert len(silences) == 1
    assert records["shift.handover"][0] == "op.liu"


def keys(block: str) -> set[str]:
    # the words themselves first (a colon inside one is not a key)
    block = re.sub(r':\s*"(?:[^"\\]|\\.)*"', ': ""', block)
    return set(re.findall(r'(?:^|[\s{,])"?([\w-]+)"?:\s', block))


def test_both_languages_have_every_word() -> None:
    text = (STATIC / "i18n.js").read_text()
    en = text[text.index("  en: {") + 7:text.index("  zh: {")]
    zh = text[text.index("  zh: {") + 7:text.index("export const lang")]
    assert keys(en) - keys(zh) == set()
    assert keys(zh) - keys(en) == set()
    assert len(keys(en)) > 200
