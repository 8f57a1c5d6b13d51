"""Several gateway instances on one database send each notification once (issue "Many
enterprises, many machines", item 5): every instance claims due outbox rows before sending
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a conditional update on both kinds). Seen before:
two instances would both send every message.

The receiver is a real webhook server counting deliveries by their Idempotency-Key."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select

from gateway.alarms import outbox
from gateway.alarms.notifiers import WebhookNotifier
from gateway.alarms.outbox import Delivery, enqueue
from gateway.settings import NotifySettings
from gateway.store.models import Database, Outbox
from tests.gateway.alarms.hooks import serving

T0 = 1_800_000_000_000
MESSAGES = 120


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[int, Counter[str]]]:
    got: Counter[str] = Counter()

    async def hook(request: web.Request) -> web.Response:
        got[request.headers["Idempotency-Key"]] += 1
        await asyncio.sleep(0.002)          # a receiver takes a moment: the senders overlap
        return web.Response(status=204)

    async with serving({"/hook": hook}) as port:
        yield port, got


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    d = Database(database_url)
    try:
        yield d
    finally:
        d.close()


def notifier() -> WebhookNotifier:
    return WebhookNotifier(NotifySettings(webhook_secret=SecretStr("a-long-enough-secret")))


def fill(db: Database, port: int, n: int = MESSAGES) -> set[str]:
    keys = {f"k{i}" for i in range(n)}
    with db.session.begin() as s:
        for k in sorted(keys):
            enqueue(s, k, "webhook", f"http://127.0.0.1:{port}/hook", {"v": 1}, T0)
    return keys


async def test_three_instances_on_one_database_send_each_message_once(
        database_url: str, receiver: tuple[int, Counter[str]]) -> None:
    port, got = receiver
    dbs = [Database(database_url) for _ in range(3)]     # one engine (pool) per instance
    try:
        keys = fill(dbs[0], port)
        senders = [Delivery(db, {"webhook": notifier()}, instance=f"gw-{i}")
                   for i, db in enumerate(dbs)]
        for _ in range(MESSAGES):                       # bounded: each round sends ≥ 1
            # each instance claims and sends in its own thread and connection, together
            await asyncio.gather(*(d.run_once(T0) for d in senders), return_exceptions=True)
            if sum(got.values()) >= MESSAGES:
                break
        assert set(got) == keys and set(got.values()) == {1}       # once each
        assert sum(d.delivered for d in senders) == MESSAGES
        assert all(d.delivered > 0 for d in senders)               # shared, not one alone
        with dbs[0].session() as s:
            rows = list(s.execute(select(Outbox)).scalars())
        assert all(r.delivered_ms == T0 and r.claimed_by is None for r in rows)
    finally:
        for db in dbs:
            db.close()


async def test_a_claim_left_by_a_dead_instance_is_sent_after_its_lease_and_once(
        db: Database, receiver: tuple[int, Counter[str]]) -> None:
    port, got = receiver
    keys = fill(db, port, 5)
    dead = Delivery(db, {"webhook": notifier()}, instance="gw-dead")
    assert len(await asyncio.to_thread(dead._claim, T0)) == 5       # claimed, then it died
    other = Delivery(db, {"webhook": notifier()}, instance="gw-other")
    assert await other.run_once(T0 + outbox.CLAIM_LEASE_MS - 1) == 0          # still leased
    assert not got
    assert await other.run_once(T0 + outbox.CLAIM_LEASE_MS) == 5
    assert set(got) == keys and set(got.values()) == {1}


async def test_an_instance_started_again_takes_back_its_own_claims_at_once(
        db: Database, receiver: tuple[int, Counter[str]]) -> None:
    port, got = receiver
    keys = fill(db, port, 5)
    before = Delivery(db, {"webhook": notifier()}, instance="gw-a")
    await asyncio.to_thread(before._claim, T0)                     # killed mid-send
    again = Delivery(db, {"webhook": notifier()}, instance="gw-a")         # its restart
    assert await again.run_once(T0 + 1000) == 5
    assert set(got) == keys and set(got.values()) == {1}
