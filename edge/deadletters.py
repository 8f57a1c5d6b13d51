"""Reading the edges' dead letters back: ``hazgw dead-letters`` listens on the topic the edge
agents publish their MQTT sensors' last refused payloads on (``edge.stats``) and prints them,
per edge and mapping, with the reason and a sample of the payload."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from edge.mqtt import MqttConnection, MqttSettings
from edge.stats import dead_letters_topic


def collect(s: MqttSettings, enterprise: str, edge: str | None, wait_s: float,
            ) -> dict[str, dict[str, Any]]:
    """The dead-letter documents that arrive within ``wait_s`` (an edge publishes its own
    with its stats while it has any), by edge; stops early once ``edge`` (if named) sent."""
    got: dict[str, dict[str, Any]] = {}
    done = threading.Event()

    def on_message(msg: mqtt.MQTTMessage) -> None:
        name = msg.topic.split("/")[-2]
        try:
            doc = orjson.loads(msg.payload)
        except orjson.JSONDecodeError:
            doc = None
        # anyone may publish there: what is not an edge's document is shown as such
        ok = isinstance(doc, dict) and isinstance(doc.get("sensors", {}), dict) and all(
            isinstance(kept, list) and all(isinstance(d, dict) for d in kept)
            for kept in doc.get("sensors", {}).values())
        got[name] = doc if ok else {
            "unreadable": bytes(msg.payload[:200]).decode(errors="replace")}
        if edge is not None and name == edge:
            done.set()

    conn = MqttConnection("dead-letters", s.model_copy(
        update={"client_id": f"{s.client_id}-dead-letters-{int(time.time())}"}),
        persistent=False, subscriptions=[(dead_letters_topic(enterprise, edge or "+"), 0)],
        on_message=on_message)
    conn.start()
    try:
        done.wait(wait_s)
    finally:
        conn.stop()
    return got


def format_doc(edge: str, doc: dict[str, Any]) -> list[str]:
    """Readable lines of one edge's dead letters."""
    if "unreadable" in doc:
        return [f"edge {edge}: not a dead-letter document: {doc['unreadable']!r}"]
    out = [f"edge {edge}: {doc.get('malformed', '?')} payload(s) dead-lettered so far"]
    for sensor, kept in (doc.get("sensors") or {}).items():
        for d in kept:
            ts = d.get("ts_ms")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts / 1000)) \
                if isinstance(ts, int) and 0 <= ts < 2**53 else "?"
            out.append(f"  {sensor} {when} on {d.get('topic')}: {d.get('reason')}")
            out.append(f"      {str(d.get('sample', ''))[:160]!r}")
    return out
