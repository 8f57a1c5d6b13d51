"""Notifications that can never be sent end in a failed state, said and counted, instead of
being retried forever; ones that may yet go through are retried (real webhook receivers,
SQLite and PostgreSQL).

Seen before: an e-mail that could never be sent (CR/LF in a header from register text) was
retried forever with no failed state."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select

from alerting.batch import ReadingBatch
from alerting.escalation import Contacts, EscalationConfig
from edge.mqtt import MqttSettings
from gateway.alarms import outbox
from gateway.alarms.notifiers import WebhookNotifier
from gateway.alarms.outbox import Delivery, enqueue
from gateway.api.app import create_app
from gateway.app import escalating, running_core
from gateway.settings import NotifySettings, Settings
from gateway.store.models import Database, Outbox
from gateway.store.register import Register
from gateway.stream.compiled import as_compiled
from gateway.stream.core import Core
from gateway.stream.selfmetrics import snapshot
from tests.gateway.alarms.hooks import serving
from tests.gateway.api.test_api import TOKENS, as_
from tests.gateway.test_e2e import small_site
from tests.waiting import wait_until

# the security suite (pytest -m security), item 5. notifications that can never be sent
pytestmark = pytest.mark.security

T0 = 1_800_000_000_000


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[int, dict[str, int]]]:
    hits = {"gone": 0, "down": 0}

    async def gone(request: web.Request) -> web.Response:
        hits["gone"] += 1
        return web.Response(status=410, text="this endpoint was retired")

    async def down(request: web.Request) -> web.Response:
        hits["down"] += 1
        return web.Response(status=503, text="maintenance")

    async with serving({"/gone": gone, "/down": down}) as port:
        yield port, hits


async def test_refused_for_good_is_given_up_at_once_and_a_server_error_is_retried(
        db: Database, hooks: tuple[int, dict[str, int]], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(outbox, "MAX_ATTEMPTS", 3)
    port, hits = hooks
    with db.session.begin() as s:
        enqueue(s, "k-gone", "webhook", f"http://127.0.0.1:{port}/gone", {"v": 1}, T0)
        enqueue(s, "k-down", "webhook", f"http://127.0.0.1:{port}/down", {"v": 1}, T0)
    d = Delivery(db, {"webhook": WebhookNotifier(NotifySettings(
        webhook_secret=SecretStr("a-long-enough-secret")))})
    with caplog.at_level(logging.WARNING, logger="gateway.alarms.outbox"):
        for k in range(6):                       # far past every backoff
            await d.run_once(T0 + k * 3_600_000)
    assert hits == {"gone": 1, "down": 3}        # 410 once; 503 until MAX_ATTEMPTS
    with db.session() as s:
        rows = {r.key: r for r in s.execute(select(Outbox)).scalars()}
    assert rows["k-gone"].failed_ms == T0 and rows["k-gone"].delivered_ms is None
    assert "HTTP 410" in (rows["k-gone"].last_error or "")
    assert rows["k-down"].failed_ms == T0 + 2 * 3_600_000 and rows["k-down"].attempts == 3
    assert d.failed_messages == 2
    given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 2 and all(r.levelno == logging.ERROR for r in caplog.records
                                      if "given up" in r.getMessage())


async def test_a_notification_given_up_degrades_the_gateway_where_people_look(
        tmp_path: Path, hooks: tuple[int, dict[str, int]]) -> None:
    """Given up is not silent: /health says degraded with the count, gateway_stats counts
    it (the console shows a gateway banner from /health)."""
    port, hits = hooks
    site = as_compiled(small_site(1502).model_copy(update={
        "escalation": EscalationConfig.model_validate(
            {"default": {1: {"steps": [{"after_s": 0, "roles": ["operator"]}]}}}),
        "contacts": Contacts.model_validate({"default": {"operator": [
            {"channel": "webhook", "target": f"http://127.0.0.1:{port}/gone"}]}})}))
    settings = Settings(database_url=str(tmp_path / "gw.sqlite3"), mqtt=MqttSettings(port=1),
                        notify=NotifySettings(webhook_secret=SecretStr("a-long-enough-secret")))
    running: list[Core] = []
    async with escalating(site, settings, running) as sink, \
            running_core(site, None, None, [sink]) as run:
        core = run.core
        running.append(core)
        await core.process(ReadingBatch(core.table.index(np.array(["G1"])),
                                        np.array([int(time.time() * 1000)]),
                                        np.array([62.0]), np.zeros(1, np.uint8)))
        await wait_until(lambda: core.stats.notifications_failed == 1, 20)
        db = Database(settings.database_url)
        app = create_app(core, Register(db), TOKENS)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://api") as c:
                assert (await c.get("/health")).json() == {"status": "degraded"}
                full = (await c.get("/health", headers=as_("t-op"))).json()
        finally:
            db.close()
        assert full["status"] == "degraded" and full["notifications_failed"] == 1
        assert snapshot(core)["notifications_failed"] == 1
    assert hits["gone"] == 1
