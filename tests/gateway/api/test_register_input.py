"""Register input refused with a 4xx before anything changes, on SQLite and PostgreSQL.

Seen before: hazard_source and point were free text (an <img> tag and CR/LF accepted, then
counted by the report and Grafana); verifier replaced the actor shown in a transition; an
operator could create an entry already overdue, which notified the regulator at once, without
a rate limit; a 5 MB text was stored; long strings, integers beyond int64 and Infinity made
500s on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from gateway.api import register as register_api
from tests.gateway.api.test_api import as_
from tests.gateway.api.test_operator_actions import Api, api  # noqa: F401 (the fixture)

# the security suite (pytest -m security), item 4. API input
pytestmark = pytest.mark.security

NOW = 1_800_000_000_000          # the core's clock is the wall clock; deadlines far ahead
AHEAD = 4_000_000_000_000


def counts(a: Api) -> tuple[int, int]:
    with a.db.session() as s:
        return (s.execute(text("SELECT count(*) FROM register_entry")).scalar_one(),
                s.execute(text("SELECT count(*) FROM audit_log")).scalar_one())


@pytest.mark.parametrize(("body", "status", "why"), [
    ({"hazard_source": "<img src=x onerror=alert(1)>"}, 422, "is not a hazard source"),
    ({"hazard_source": "nowhere"}, 422, "is not a hazard source of the site (farm)"),
    ({"point": "NOPE"}, 422, "point 'NOPE' is not a point of 'farm'"),
    ({"title": "line one\r\nBcc: x"}, 422, "control character"),
    ({"title": "x" * 257}, 422, "at most 256"),
    ({"description": "x" * 5_000_000}, 422, "at most 10000"),
    ({"five": {"deadline_ms": 2**70}}, 422, "less than or equal"),
    ({"five": {"deadline_ms": 1}}, 422, "deadline_ms is in the past"),
    ({"five": {"funds_cny": -1}}, 422, "greater than or equal"),
    ({"five": {"responsible_person": "Li\x00"}}, 422, "control character U+0000"),
])
async def test_bad_entries_are_refused_and_nothing_is_stored(
        api: Api, body: dict[str, Any], status: int, why: str) -> None:  # noqa: F811
    entry = {"hazard_source": "farm", "title": "valve leaks", "level": "general",
             "point": "G1", "five": {"deadline_ms": AHEAD}} | body
    before = counts(api)
    r = await api.client.post("/register", json=entry, headers=as_("t-op"))
    assert r.status_code == status, r.text
    assert why in r.text
    assert counts(api) == before


async def test_infinity_and_nan_are_refused(api: Api) -> None:  # noqa: F811
    for raw in (b'{"hazard_source": "farm", "title": "t", "level": "general", '
                b'"five": {"funds_cny": Infinity}}',
                b'{"hazard_source": "farm", "title": "t", "level": "general", '
                b'"five": {"funds_cny": NaN}}'):
        r = await api.client.post("/register", content=raw, headers=as_("t-op") | {
            "Content-Type": "application/json"})
        assert r.status_code == 422, r.text
    assert counts(api) == (0, 0)


async def test_the_actor_is_who_acted_and_the_verifier_stands_beside_it(
        api: Api) -> None:  # noqa: F811
    r = await api.client.post("/register", headers=as_("t-op"), json={
        "hazard_source": "farm", "title": "valve leaks", "level": "general"})
    eid = r.json()["id"]
    five = {"measures": "m", "funds_cny": 5000, "responsible_person": "Li",
            "deadline_ms": AHEAD, "contingency_plan": "EP"}
    for step in ({"action": "update_five", "five": five}, {"action": "start"},
                 {"action": "submit"},
                 {"action": "verify_pass", "verifier": "chief.inspector", "comment": "ok"}):
        r = await api.client.post(f"/register/{eid}/transition", json=step,
                                  headers=as_("t-sm"))
        assert r.status_code == 200, r.text
    with api.db.session() as s:
        last = s.execute(text("SELECT actor, verifier FROM register_transition "
                              "ORDER BY id DESC LIMIT 1")).one()
    assert tuple(last) == ("safety.wang", "chief.inspector")


async def test_registering_is_rate_limited_per_person(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(register_api, "CREATES_PER_HOUR", 3)
    entry = {"hazard_source": "farm", "title": "t", "level": "general"}
    codes = [(await api.client.post("/register", json=entry, headers=as_("t-op"))).status_code
             for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    # another person is not held back by it
    assert (await api.client.post("/register", json=entry,
                                  headers=as_("t-sm"))).status_code == 201
