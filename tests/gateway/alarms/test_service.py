"""The escalation service while its database is away: events wait in bounded queues."""

from __future__ import annotations

import logging

import pytest

from edge.clock import WALL
from gateway.alarms import service
from gateway.alarms.service import EscalationService
from gateway.settings import Settings
from gateway.sim.ports import free_port
from gateway.stream.compiled import as_compiled
from tests.faults.clients import escalating_site
from tests.gateway.alarms.test_escalation import T0, event


async def test_events_wait_for_the_database_in_bounded_queues(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(service, "MAX_PENDING_EVENTS", 10)
    # nothing listens there: every attempt to open the database fails
    settings = Settings(database_url=f"postgresql+psycopg://127.0.0.1:{free_port()}/none")
    svc = EscalationService(as_compiled(escalating_site(
        [{"after_s": 0, "roles": ["regulator"]}], "f")), settings, WALL,
                            lambda point: [])
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.alarms.service"):
            for i in range(8):
                await svc.sink([event("GT101:process", T0 + i, "activate", "unack")] * 3)
        # 24 events came; each queue keeps the newest that fit in 10 (lists are whole)
        assert [sum(map(len, q)) for q in svc.pending.values()] == [9, 9]
        assert svc.dropped_events == 2 * 15
        assert [q[-1][0].ts for q in svc.pending.values()] == [T0 + 7, T0 + 7]
        assert len(caplog.records) == 1 and "no longer kept" in caplog.records[0].getMessage()
    finally:
        svc.close()


def test_webhook_contacts_without_a_real_secret_stop_the_service() -> None:
    """Seen before: an empty secret was accepted silently (every webhook unsigned)."""
    from pydantic import SecretStr

    from alerting.escalation import Contacts
    from gateway.settings import NotifySettings
    site = escalating_site([{"after_s": 0, "roles": ["regulator"]}], "f").model_copy(update={
        "contacts": Contacts.model_validate({"default": {"regulator": [
            {"channel": "webhook", "target": "https://yjj.example.gov.cn/hook"}]}})})
    for secret in ("", "short"):
        with pytest.raises(ValueError, match="HAZGW_NOTIFY__WEBHOOK_SECRET is empty or under 16 "
                                             "characters while the site sends to 1 webhook"):
            EscalationService(as_compiled(site), Settings(notify=NotifySettings(
                webhook_secret=SecretStr(secret))), WALL, lambda point: [])
    ok = EscalationService(as_compiled(site), Settings(notify=NotifySettings(
        webhook_secret=SecretStr("a-long-enough-secret"))), WALL, lambda point: [])
    ok.close()
