"""Publishes pre-encoded wire messages at QoS 1 as fast as the broker takes them (a separate
process, so the publisher does not share the gateway's interpreter lock)."""

from __future__ import annotations

import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def read_messages(path: str) -> list[tuple[str, bytes]]:
    """Length-prefixed (topic, payload) records."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        tl, pl = struct.unpack_from("<II", data, pos)
        pos += 8
        topic = data[pos:pos + tl].decode()
        pos += tl
        out.append((topic, data[pos:pos + pl]))
        pos += pl
    return out


def write_messages(path: str, msgs: list[tuple[str, bytes]]) -> None:
    """Store messages for the publisher process."""
    with open(path, "wb") as f:
        for topic, payload in msgs:
            t = topic.encode()
            f.write(struct.pack("<II", len(t), len(payload)) + t + payload)


def main() -> int:
    """argv: port messages-file timeout-s"""
    port, path, timeout_s = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    msgs = read_messages(path)
    acked = 0
    done = threading.Event()

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: object, p: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(msgs):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.on_publish = on_publish
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = time.perf_counter()
    for topic, payload in msgs:
        client.publish(topic, payload, qos=1)
    ok = done.wait(timeout_s)
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    print(f"{acked} {elapsed:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
