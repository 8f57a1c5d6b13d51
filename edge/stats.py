"""Edge self-metrics: what an edge agent says about itself, published like its readings.

One orjson-encoded JSON object at QoS 1 on ``mhs/v1/<enterprise code>/<edge id>/stats``,
every ``stats_interval_s``::

    {"v": 1, "edge": "edge-01", "boot": 1732345678123, "ts": 1732345688123,
     "edge_stats": {"readings_published": 9000, "spool_messages": 0, ...},   # name → number
     "devices": {"plc-lpg": {"polls_ok": 10, "polls_failed": 0, "online": 1, ...}, ...}}

Counters are totals since the agent started (``boot``); ``latency_max_ms`` is the largest
since the previous message. The gateway writes them to InfluxDB as measurements
``edge_stats`` (tags enterprise, edge) and ``device_stats`` (tags enterprise, edge, device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from edge.wire import TOPIC_ROOT, VERSION, WireError, load_message

Numbers = dict[str, float]


def stats_topic(enterprise: str, edge: str) -> str:
    """The topic an edge publishes its self-metrics on."""
    return f"{TOPIC_ROOT}/{enterprise}/{edge}/stats"


def dead_letters_topic(enterprise: str, edge: str) -> str:
    """The topic an edge publishes its MQTT sensors' last dead letters on (JSON, with the
    stats, while it has any); ``hazgw dead-letters`` reads it."""
    return f"{TOPIC_ROOT}/{enterprise}/{edge}/dead-letters"


@dataclass(frozen=True)
class EdgeStats:
    """One decoded stats message."""

    edge: str
    boot: int
    ts_ms: int
    edge_stats: Numbers
    devices: dict[str, Numbers]


def encode_stats(s: EdgeStats) -> bytes:
    """The message for ``s``."""
    return orjson.dumps({"v": VERSION, "edge": s.edge, "boot": s.boot, "ts": s.ts_ms,
                         "edge_stats": s.edge_stats, "devices": s.devices})


def _numbers(doc: Any, where: str) -> Numbers:
    if not isinstance(doc, dict):
        raise WireError(f"{where} is not an object")
    for k, v in doc.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise WireError(f"{where}.{k} is not a finite number: {str(v)[:40]!r}")
        if not k.replace("_", "").isalnum():
            raise WireError(f"{where} has an unusable name {k[:40]!r}")
    return doc


def decode_stats(payload: bytes) -> EdgeStats:
    """Parse and check a stats message; WireError names what is wrong."""
    doc = load_message(payload)
    for key in ("edge", "boot", "ts"):
        if key not in doc:
            raise WireError(f"missing {key!r}")
    if not isinstance(doc["edge"], str) or not isinstance(doc["boot"], int) \
            or not isinstance(doc["ts"], int):
        raise WireError("edge must be a string, boot and ts integers")
    devices = doc.get("devices", {})
    if not isinstance(devices, dict):
        raise WireError("devices is not an object")
    return EdgeStats(doc["edge"], doc["boot"], doc["ts"],
                     _numbers(doc.get("edge_stats", {}), "edge_stats"),
                     {str(d): _numbers(v, f"devices.{d}") for d, v in devices.items()})
