"""Tokens and headers: digests and a 128-bit minimum in the settings (errors that never show
a token), ``hazgw token new``, wrong tokens said once and slowed per client, /health that
says only ok without a token, no Swagger UI unless asked (it needs a CDN), the browser
headers of every answer, and a cap on console streams.

Seen before: 3 000 wrong-token requests in 1.8 s, none logged, none slowed; "a" and "" as
configured tokens; /health with counts and /docs without a token; no CSP, no frame-ancestors,
no nosniff; the token in localStorage forever; no cap on /live."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.api.app import create_app
from gateway.api.live import LiveFeed
from gateway.api.tokens import FailedAuth, TokenTable, digest
from gateway.cli import main
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.settings import ApiSettings, ApiUser, Settings
from gateway.store.models import Database
from gateway.store.register import Register
from gateway.stream.core import Core
from tests.gateway.api.test_api import TOKENS, as_
from tests.gateway.test_e2e import small_site

# the security suite (pytest -m security), item 6. tokens and headers
pytestmark = pytest.mark.security


def test_a_short_plaintext_token_stops_start_up_naming_its_user_not_the_token(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAZGW_API__TOKENS", json.dumps(
        {"short-secret-1": {"name": "op.liu", "role": "operator"}}))
    with pytest.raises(SystemExit) as stop:
        main(["run"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "the token of op.liu: a plaintext token needs at least 22 characters" in err
    assert "short-secret-1" not in err
    with pytest.raises(ValueError, match="64 lower-case hex digits"):
        ApiSettings(tokens={"sha256:beef": ApiUser(name="x", role="admin")})


def test_token_new_prints_a_token_and_the_line_that_keeps_only_its_digest(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["token", "new", "regulator", "yjj.zhou"]) == 0
    out = capsys.readouterr().out.splitlines()
    token = out[0].rsplit(": ", 1)[1]
    entry = json.loads("{" + out[2] + "}")
    assert len(token) >= 43                                   # 256 bits, URL-safe base64
    assert list(entry) == [f"sha256:{digest(token)}"] and token not in out[2]
    monkeypatch.setenv("HAZGW_API__TOKENS", json.dumps(entry))
    table = TokenTable(Settings().api.tokens)
    assert table.user(token) == ApiUser(name="yjj.zhou", role="regulator")
    assert table.user(token + "x") is None and table.plaintext == 0


def test_refusals_are_free_five_times_a_minute_then_slowed_doubling_to_five_seconds(
        caplog: pytest.LogCaptureFixture) -> None:
    f = FailedAuth()
    with caplog.at_level(logging.WARNING, logger="gateway.api.tokens"):
        delays = [f.delay_s("10.0.0.9", now=100.0 + i) for i in range(12)]
        other = f.delay_s("10.0.0.10", now=111.0)
        later = f.delay_s("10.0.0.9", now=100.0 + 11 + 61)    # a quiet minute: free again
    assert delays == [0, 0, 0, 0, 0, 0.25, 0.5, 1, 2, 4, 5, 5]
    assert (other, later) == (0, 0) and f.total == 14
    said = [r.getMessage() for r in caplog.records]
    assert said == ["api: refused a token from 10.0.0.9 (1 in the last minute)",
                    "api: refused a token from 10.0.0.9 (10 in the last minute; answers "
                    "slowed)",
                    "api: refused a token from 10.0.0.10 (1 in the last minute)",
                    "api: refused a token from 10.0.0.9 (1 in the last minute)"]


@pytest.fixture
async def app_client(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, LiveFeed]]:
    async with BatchingWriter(NullSink()) as writer:
        core = Core(small_site(1502), writer)
        feed = LiveFeed(core.enterprise)
        app = create_app(core, Register(db), TOKENS, feed=feed, max_live_streams=1)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as c:
            yield c, feed
        feed.close()


async def test_wrong_tokens_are_refused_said_and_counted(
        app_client: tuple[httpx.AsyncClient, LiveFeed], caplog: pytest.LogCaptureFixture,
        ) -> None:
    client, _ = app_client
    with caplog.at_level(logging.WARNING, logger="gateway.api.tokens"):
        codes = [(await client.get("/alarms", headers=as_(f"guess-{i}"))).status_code
                 for i in range(7)]
    assert codes == [401] * 7
    assert sum("refused a token" in r.getMessage() for r in caplog.records) == 1
    full = (await client.get("/health", headers=as_("t-op"))).json()
    assert full["failed_token_attempts"] == 7 and "readings" in full
    assert (await client.get("/health")).json() == {"status": "ok"}    # a probe: no counts


async def test_headers_no_swagger_ui_and_a_cap_on_console_streams(
        app_client: tuple[httpx.AsyncClient, LiveFeed]) -> None:
    client, feed = app_client
    for path in ("/console/", "/alarms"):
        r = await client.get(path, headers=as_("t-op"), follow_redirects=True)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
    assert (await client.get("/docs")).status_code == 404
    assert (await client.get("/openapi.json")).status_code == 200
    held = feed.subscribe()                   # one console stream open: the cap is one
    try:
        r = await client.get("/live", params={"token": "t-op"})
        assert r.status_code == 503 and "console streams are open" in r.json()["detail"]
    finally:
        feed.unsubscribe(held)
