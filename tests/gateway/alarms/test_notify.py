"""Escalation to people and the regulator over real channels: a local MQTT broker, a local
HTTP receiver that verifies the webhook signature, a local SMTP server (aiosmtpd). Time is
injected; storage runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import email.policy
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from alerting.engine import AlarmEvent
from alerting.escalation import Contacts, EscalationConfig
from edge import wire
from edge.mqtt import MqttSettings
from gateway.alarms.escalation import Escalator
from gateway.alarms.notifiers import (
    SIGNATURE_HEADER,
    WebhookNotifier,
    build_notifiers,
    signature,
    subject,
    verify,
)
from gateway.alarms.outbox import Delivery
from gateway.app import gateway_session
from gateway.settings import InfluxSettings, NotifySettings, Settings
from gateway.sim.ports import free_port
from gateway.store.models import Database
from tests.gateway.alarms.hooks import serving
from tests.gateway.test_e2e import small_site
from tests.services import Server
from tests.waiting import wait_until

# the security suite (pytest -m security), item 5. webhooks and e-mail
pytestmark = pytest.mark.security

T0 = 1_800_000_000_000
S = 1000
SECRET = "s3cret-for-tests"


def contacts(hook_port: int) -> Contacts:
    return Contacts.model_validate({"default": {
        "operator": [{"channel": "mqtt", "target": "ops/E1/alarms"}],
        "operational": [{"channel": "email", "target": "ops.manager@plant.example"}],
        "technical": [{"channel": "email", "target": "tech.lead@plant.example"}],
        "main": [{"channel": "webhook", "target": f"http://127.0.0.1:{hook_port}/main"}],
        "regulator": [{"channel": "mqtt", "target": "reg/E1/feed"},
                      {"channel": "webhook",
                       "target": f"http://127.0.0.1:{hook_port}/regulator"},
                      {"channel": "email", "target": "duty@yjj.example.gov.cn"}]}})


def escalator_config() -> EscalationConfig:
    return EscalationConfig.model_validate({"default": {1: {"steps": [
        {"after_s": 0, "roles": ["operator"]},
        {"after_s": 300, "roles": ["operational", "technical"]},
        {"after_s": 900, "roles": ["main"]},
        {"after_s": 1800, "roles": ["regulator"]}]}}})


def activation(ts: int, event: str = "activate", state: str = "unack",
               user: str | None = None) -> AlarmEvent:
    return AlarmEvent(alarm_id="V101_level:process", alarm_type="process", point="V101_level",
                      source="lpg_farm", equipment="V101", console="control_room",
                      kind="level", ts=ts, event=event, state=state, prev_state="normal",
                      level=2, level_name="HH", prev_level=0, gb50493_level=None, priority=1,
                      value=11.8, limit=11.5, forecast_s=None, user=user, reason=None,
                      annunciated=event == "activate", toxic=False)


class Received:
    """What each receiver got: (channel, target, key, document)."""

    def __init__(self) -> None:
        self.hook_port = free_port()
        self.items: list[tuple[str, str, str, dict[str, Any]]] = []
        self.bad_signatures = 0
        self.smtp_port = 0
        self._lock = threading.Lock()

    def add(self, channel: str, target: str, key: str, doc: dict[str, Any]) -> None:
        with self._lock:
            self.items.append((channel, target, key, doc))


@asynccontextmanager
async def receivers(broker: Server) -> AsyncIterator[Received]:
    got = Received()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        # as a receiver checks it: over time, idempotency key and body, at most 5 min old
        if not verify(SECRET.encode(), request.headers.get(SIGNATURE_HEADER, ""),
                      request.headers.get("Idempotency-Key", ""), body, time.time()):
            got.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        got.add("webhook", request.path, request.headers["Idempotency-Key"], json.loads(body))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{who}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", got.hook_port).start()

    class Mailbox:
        async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
                self, server: object, session: object, envelope: Any) -> str:
            msg = message_from_bytes(envelope.content, policy=email.policy.default)
            # a long header arrives folded: unfolding leaves the leading blank
            got.add("email", envelope.rcpt_tos[0], msg["X-Hazgw-Key"].strip(),
                    json.loads(msg.get_content()))
            return "250 OK"

    smtp = Controller(Mailbox(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="notify-receiver")
    ready = threading.Event()

    def on_connect(c: mqtt.Client, *_: object) -> None:
        c.subscribe([("ops/#", 1), ("reg/#", 1)])
        ready.set()

    sub.on_connect = on_connect
    sub.on_message = lambda c, u, m: got.add("mqtt", m.topic, json.loads(m.payload)["key"],
                                             json.loads(m.payload))
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    try:
        assert await asyncio.to_thread(ready.wait, 10)
        await asyncio.sleep(0.2)
        got.smtp_port = smtp.port
        yield got
    finally:
        sub.disconnect()
        sub.loop_stop()
        smtp.stop()
        await runner.cleanup()


def delivery(db: Database, broker: Server, got: Received) -> tuple[Delivery, Any]:
    notifiers = build_notifiers(
        MqttSettings(port=broker.port, client_id=f"notifier-{id(db)}"),
        NotifySettings(webhook_secret=SecretStr(SECRET), smtp_port=got.smtp_port))
    return Delivery(db, notifiers), notifiers["mqtt"]


async def settle(d: Delivery, now_ms: int, got: Received, n: int) -> None:
    """Deliver what is due and wait (bounded) until ``n`` items have arrived."""
    await d.run_once(now_ms)
    for _ in range(100):
        if len(got.items) >= n:
            return
        await asyncio.sleep(0.05)


async def test_an_unacknowledged_hh_reaches_the_regulator_on_every_channel(
        db: Database, mosquitto_server: Server) -> None:
    async with receivers(mosquitto_server) as got:
        esc = Escalator(db, escalator_config(), contacts(got.hook_port), "E1",
                        {"lpg_farm": "二级"})
        d, mq = delivery(db, mosquitto_server, got)
        try:
            await asyncio.sleep(0.5)                      # the notifier's MQTT connection
            esc.record([activation(T0)])
            expected = 0
            for t_s, n_new in ((0, 1), (299, 0), (300, 2), (900, 1), (1799, 0), (1800, 3)):
                esc.tick(T0 + t_s * S)
                expected += n_new
                await settle(d, T0 + t_s * S, got, expected)
                assert len(got.items) == expected, (t_s, got.items)
            assert [s for s, _ in esc.steps_fired("V101_level:process")] == [0, 1, 2, 3]
            regulator = [(c, t, doc) for c, t, _, doc in got.items if "regulator" in doc["roles"]]
            assert sorted(c for c, _, _ in regulator) == ["email", "mqtt", "webhook"]
            doc = regulator[0][2]
            assert {k: doc[k] for k in ("enterprise", "hazard_source", "point", "value",
                                        "limit", "alarm_level", "warning_colour",
                                        "annunciated_ms", "escalated_ms", "step")} == {
                "enterprise": "E1", "hazard_source": {"code": "lpg_farm", "level": "二级"},
                "point": "V101_level", "value": 11.8, "limit": 11.5, "alarm_level": "HH",
                "warning_colour": "red", "annunciated_ms": T0,
                "escalated_ms": T0 + 1800 * S, "step": 3}
            assert got.bad_signatures == 0
            # acknowledged at last; a second occurrence is acknowledged after its first step:
            # its climb stops there
            esc.record([activation(T0 + 2000 * S, "acknowledge", "ack", "op.liu")])
            esc.record([activation(T0 + 4000 * S)])
            esc.tick(T0 + 4000 * S)
            esc.record([activation(T0 + 4100 * S, "acknowledge", "ack", "op.liu")])
            assert esc.tick(T0 + 9000 * S) == []
            await settle(d, T0 + 9000 * S, got, expected + 1)
            assert len(got.items) == expected + 1            # the first step only
        finally:
            mq.close()


async def test_killed_between_alarm_and_notification_each_channel_gets_it_once(
        database_url: str, mosquitto_server: Server) -> None:
    Database(database_url).close()                         # migrated before the child runs
    async with receivers(mosquitto_server) as got:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.gateway.alarms.escalate_and_die", database_url,
            str(got.hook_port),
            stdout=subprocess.PIPE)
        out, _ = await child.communicate()
        assert child.returncode == -9 and out.strip() == b"4"   # died after 4 steps fired
        assert got.items == []                                     # nothing was sent
        db = Database(database_url)                                # the restarted gateway
        d, mq = delivery(db, mosquitto_server, got)
        try:
            await asyncio.sleep(0.5)
            await settle(d, T0 + 1801 * S, got, 7)
            await d.run_once(T0 + 1900 * S)                        # and again: nothing new
            await asyncio.sleep(0.3)
        finally:
            mq.close()
            db.close()
    keys = [k for _, _, k, _ in got.items]
    assert len(keys) == len(set(keys)) == 7                        # each exactly once
    assert sorted(c for c, _, _, doc in got.items if doc["step"] == 3) == \
        ["email", "mqtt", "webhook"]


async def test_the_running_gateway_escalates_a_gas_alarm_to_the_regulator_feed(
        tmp_path: Path, mosquitto_server: Server) -> None:
    """Wiring: readings over MQTT → core → alarm → escalation clock → outbox → MQTT feed."""
    base = small_site(free_port())
    site = base.model_copy(update={
        "escalation": EscalationConfig.model_validate({"default": {
            p: {"steps": [{"after_s": 0, "roles": ["regulator"]}]} for p in (1, 2)}}),
        "contacts": Contacts.model_validate({"default": {"regulator": [
            {"channel": "mqtt", "target": "reg/feed/test-wiring"}]}})})
    settings = Settings(mqtt=MqttSettings(port=mosquitto_server.port, client_id="core-esc"),
                        influx=InfluxSettings(kind="none"),
                        database_url=str(tmp_path / "gw.sqlite3"))
    got: list[dict[str, Any]] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="feed-watcher")
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    sub.connect("127.0.0.1", mosquitto_server.port)
    sub.subscribe("reg/feed/test-wiring", 1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-esc")
    pub.connect("127.0.0.1", mosquitto_server.port)
    pub.loop_start()
    try:
        async with gateway_session(site, settings) as (_, ingest):
            await wait_until(ingest.subscribed.is_set, 10)
            now = int(time.time() * 1000)
            payload = wire.encode("edge-t", 1, 0, ["G1"], [now], [62.0], [0])
            pub.publish(wire.readings_topic(site.enterprise.code, "edge-t"), payload, qos=1)
            await wait_until(lambda: got, 15)
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()
    doc = got[0]
    assert (doc["point"], doc["value"], doc["limit"], doc["step"], doc["roles"]) == \
        ("G1", 62.0, 50.0, 0, ["regulator"])
    assert doc["hazard_source"]["code"] == "farm" and doc["enterprise"] == site.enterprise.code


def test_a_signature_covers_time_key_and_body_and_ages_out() -> None:
    """Seen before: the HMAC covered the body only, so a captured delivery could be sent
    again at any time and its idempotency key changed unseen."""
    body, key, secret = b'{"step": 3}', "GT101:process@1/step3/webhook:x", SECRET.encode()
    header = signature(secret, key, body, 1_800_000_000)
    assert verify(secret, header, key, body, 1_800_000_100)
    assert not verify(secret, header, key, body, 1_800_000_000 + 301)      # replayed later
    assert not verify(secret, header, key + "x", body, 1_800_000_100)      # another key
    assert not verify(secret, header, key, body + b" ", 1_800_000_100)     # another body
    assert not verify(secret, header.replace("t=1800000000", "t=1800000100"), key, body,
                      1_800_000_100)                                       # moved in time
    assert not verify(secret, "sha256=deadbeef", key, body, 1_800_000_100)


async def test_a_redirect_is_not_followed_with_the_body_and_signature() -> None:
    landed: list[bytes] = []

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        landed.append(await request.read())
        return web.Response(text="ok")

    async with serving({"/hook": moved, "/elsewhere": elsewhere}) as port:
        hook = WebhookNotifier(NotifySettings(webhook_secret=SecretStr(SECRET)))
        with pytest.raises(ConnectionError, match=r"HTTP 302 to .*/elsewhere \(not followed\)"):
            await hook.send(f"http://127.0.0.1:{port}/hook", "k", b"{}")
    assert landed == []


def test_subjects_by_kind_and_no_header_injection() -> None:
    assert subject({"warning_colour": "red", "alarm_level": "HH", "point": "GT101",
                    "hazard_source": {"code": "lpg_farm"}, "step": 3}) == \
        "[red] HH GT101 at lpg_farm (escalation step 3)"
    overdue = subject({"kind": "register_overdue", "entry": 7, "level": "major",
                       "hazard_source": {"code": "lpg_farm"},
                       "title": "Valve\r\nBcc: all@example.com"})
    assert overdue == ("Hazard register: entry 7 overdue (major) at lpg_farm: Valve  Bcc: "
                       "all@example.com")
    assert "\n" not in overdue and "None" not in overdue
    assert subject({"kind": "shelved", "warning_colour": "red", "point": "GT101",
                    "hazard_source": {"code": "lpg_farm"}, "by": "safety.wang"}) == \
        "[red] GT101 at lpg_farm shelved by safety.wang"


def test_the_readmes_receiver_snippet_accepts_our_signature_and_refuses_a_replay() -> None:
    import re
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "def genuine" in b]
    scope: dict[str, Any] = {}
    exec(code, scope)                                    # the receiver, as documented
    body, key = b'{"step": 1}', "GT101:process@1/step1/webhook:x"
    now = int(time.time())
    assert scope["genuine"](SECRET.encode(), signature(SECRET.encode(), key, body, now), key,
                            body)
    assert not scope["genuine"](SECRET.encode(), signature(SECRET.encode(), key, body,
                                                           now - 600), key, body)
