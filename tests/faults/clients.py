"""The plain MQTT clients the fault tests use on the broker: a publishing edge, and a
regulator feed that keeps every JSON document it receives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from alerting.escalation import Contacts, EscalationConfig
from gateway.sim.ports import free_port
from gateway.site import SiteConfig
from tests.gateway.test_e2e import small_site


@contextmanager
def client(port: int, client_id: str, feed: str | None = None,
           into: list[dict[str, Any]] | None = None,
           login: tuple[str, str] | None = None) -> Iterator[mqtt.Client]:
    """A connected client (with ``login``: user and password); with ``feed``, subscribed
    to it, appending each message (JSON) to ``into``. Disconnected on exit."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if login is not None:
        c.username_pw_set(*login)
    if feed is not None and into is not None:
        got = into
        c.on_message = lambda cl, u, m: got.append(json.loads(m.payload))
    c.connect("127.0.0.1", port)
    if feed is not None:
        c.subscribe(feed, 1)
    c.loop_start()
    try:
        yield c
    finally:
        c.disconnect()
        c.loop_stop()


async def through_the_gateway(port: int, client_id: str, site: SiteConfig, settings: Any,
                              messages: list[tuple[str, bytes]], influx: Any, db: str,
                              ) -> tuple[Any, set[tuple[str, int]]]:
    """Publish ``messages`` with a plain client into a gateway session until the core has
    taken them all and written what it keeps; returns the core and the stored (point, time)
    pairs of the readings."""
    from gateway.app import gateway_session
    from tests.services import influx_query
    from tests.waiting import wait_until

    with client(port, client_id) as pub:
        async with gateway_session(site, settings) as (core, ingest):
            await wait_until(ingest.subscribed.is_set, 10)
            for t, p in messages:
                pub.publish(t, p, qos=1)
            await wait_until(lambda: core.stats.messages >= len(messages), 60)
            await core.writer.flush()
    stored = {(s["tags"]["point"], int(r[0])) for s in influx_query(
        influx, db, 'SELECT "value" FROM reading GROUP BY point') for r in s["values"]}
    return core, stored


def steps(got: list[dict[str, Any]], alarm_type: str = "process") -> dict[tuple[str, int], int]:
    """How often each (alarm, step) of one alarm type was notified (the feed's key is
    ``<enterprise>/<alarm>@<ts>/step<n>/...``)."""
    out: dict[tuple[str, int], int] = {}
    for d in got:
        alarm = d["key"].split("@")[0].split("/", 1)[1]
        if alarm.endswith(f":{alarm_type}"):
            out[(alarm, d["step"])] = out.get((alarm, d["step"]), 0) + 1
    return out


def escalating_site(policy: list[dict[str, Any]], feed: str) -> SiteConfig:
    """The small test site, every priority escalating by ``policy`` to an MQTT feed."""
    return small_site(free_port()).model_copy(update={
        "escalation": EscalationConfig.model_validate({"default": {
            p: {"steps": policy} for p in (1, 2, 3)}}),
        "contacts": Contacts.model_validate({"default": {"regulator": [
            {"channel": "mqtt", "target": feed}]}})})
