"""Load generator (its own process, so it does not share the gateway's interpreter lock):
publishes wire messages at QoS 1, optionally at a fixed rate, and measures alarm latency.

Latency probe: every ``mark_every``-th message carries one extra reading on a probe point,
flipped across its limit and stamped with the message's scheduled send time; the alarm
event the gateway publishes for it (on ``mhs/v1/<enterprise>/alarms``) carries that stamp,
so latency = arrival of the alarm event − scheduled send time.

    python -m bench.publisher '{"port": 1883, "points": 10000, ...}'   → JSON on stdout
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.workload import ENTERPRISE, point_ids, probe_ids, values
from edge import wire
from edge.signing import sign

Message = tuple[str, bytes | None, float, tuple[Any, ...] | None]


def build(cfg: dict[str, Any], t0_ms: int) -> list[Message]:
    """(topic, payload, send offset ms, probe parts) per message; a probe message is encoded
    at send time, since its probe reading carries the real scheduled time.

    Readings are stamped on a clock that follows the offered (or nominal) rate from ``t0_ms``,
    so they look live to the gateway's stale and trend rules."""
    rng = np.random.default_rng(cfg.get("seed", 1))
    ids = point_ids(cfg["points"])
    probes = probe_ids(cfg.get("probes", 0))
    per, n_msgs, edges = cfg["per_message"], cfg["messages"], cfg.get("edges", 4)
    rate = cfg.get("rate", 0)
    gap_ms = per / rate * 1000 if rate else 0.0
    per_cycle = max(1, len(ids) // per)
    cycle_ms = len(ids) / (rate or cfg.get("nominal_rate", 150_000)) * 1000
    out: list[Message] = []
    for m in range(n_msgs):
        cycle, part = divmod(m, per_cycle)
        start = (part * per) % len(ids)
        sel = [ids[(start + k) % len(ids)] for k in range(per)]
        ts = np.full(per, t0_ms + int(cycle * cycle_ms), np.int64)
        vals = values(rng, per)
        edge = f"edge-{m % edges}"
        topic = wire.readings_topic(ENTERPRISE, edge)
        if probes and cfg.get("mark_every") and m % cfg["mark_every"] == 0:
            k = m // cfg["mark_every"]
            # each probe alternates above / below its limit: one alarm event per mark
            probe_val = 80.0 if (k // len(probes)) % 2 == 0 else 20.0
            parts = (edge, m // edges, [*sel, probes[k % len(probes)]], ts, vals, probe_val)
            out.append((topic, None, m * gap_ms, parts))
        else:
            payload = wire.encode(edge, 1, m // edges, sel, ts, vals, np.zeros(per, np.uint8))
            out.append((topic, signed(cfg, topic, payload), m * gap_ms, None))
    return out


def signed(cfg: dict[str, Any], topic: str, payload: bytes) -> bytes:
    """The payload as the edge sends it: signed when the run has a key (edge.signing)."""
    key = cfg.get("sign_key")
    return sign(key.encode(), topic, payload) if key else payload


def encode_probe(parts: tuple[Any, ...], send_ms: int) -> bytes:
    """A probe message stamped with its send time."""
    edge, seq, sel, ts, vals, probe_val = parts
    return wire.encode(edge, 1, seq, sel, np.append(ts, send_ms), np.append(vals, probe_val),
                       np.zeros(len(sel), np.uint8))


def main() -> int:
    """Publish, wait for acknowledgements and probe alarms, print a JSON summary."""
    cfg = json.loads(sys.argv[1])
    # readings are stamped from when publishing is expected to start (after building them)
    est_build_s = cfg["messages"] * cfg["per_message"] / 2_000_000
    msgs = build(cfg, int((time.time() + est_build_s + 1.0) * 1000))
    acked = 0
    done = threading.Event()
    arrivals: dict[int, float] = {}

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: object, p: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(msgs):
            done.set()

    def on_alarm(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time() * 1000
        ev = orjson.loads(msg.payload)
        if ev.get("alarm_type") == "process" and str(ev.get("point", "")).startswith("A"):
            arrivals.setdefault(int(ev["ts"]), now)

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-alarm-listener")
    sub.on_message = on_alarm
    sub.connect("127.0.0.1", cfg["port"])
    sub.subscribe(f"mhs/v1/{ENTERPRISE}/alarms", qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    pub.on_publish = on_publish
    pub.max_inflight_messages_set(200)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", cfg["port"])
    pub.loop_start()
    time.sleep(0.5)
    start_ms = time.time() * 1000 + 100
    start_wall = start_ms / 1000
    t_start = time.perf_counter()
    marks: list[int] = []
    for topic, payload, offset_ms, parts in msgs:
        send_ms = start_ms + offset_ms
        if cfg.get("rate"):
            delay = send_ms / 1000 - time.time()
            if delay > 0:
                time.sleep(delay)
        if parts is not None:
            stamp = round(time.time() * 1000)
            marks.append(stamp)
            payload = encode_probe(parts, stamp)
        pub.publish(topic, payload, qos=1)
    ok = done.wait(cfg.get("timeout_s", 300))
    publish_s = time.perf_counter() - t_start
    deadline = time.time() + 30
    while len(arrivals) < len(marks) and time.time() < deadline:
        time.sleep(0.05)
    lat = np.array([arrivals[s] - s for s in marks if s in arrivals])
    pub.disconnect()
    pub.loop_stop()
    sub.disconnect()
    sub.loop_stop()
    print(json.dumps({
        "acked": acked, "messages": len(msgs), "publish_s": publish_s, "all_acked": ok,
        "start_wall": start_wall,
        "marks": len(marks), "alarms_received": len(lat),
        "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "latency_max_ms": float(lat.max()) if len(lat) else None}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
