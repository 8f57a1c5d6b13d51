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
import re
from dataclasses import dataclass
from typing import Any

import orjson

from edge.wire import ID_PATTERN, TOPIC_ROOT, VERSION, WireError, load_message

Numbers = dict[str, float]
# What the gateway accepts (the stats become line-protocol tags and field names): ids by the
# site's identifier rule, metric names lower-case ASCII words; integers within int64 and
# times within what InfluxDB can store (ns since 1970 in an int64), in ms.
IDENTIFIER = re.compile(ID_PATTERN)
METRIC = re.compile(r"[a-z][a-z0-9_]{0,63}")
INT64_MAX = 2**63 - 1
MAX_TS_MS = INT64_MAX // 1_000_000


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
        if not METRIC.fullmatch(k):
            raise WireError(f"{where} has an unusable name {k[:40]!r} (lower-case letters, "
                            "digits, _)")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise WireError(f"{where}.{k} is not a finite number: {str(v)[:40]!r}")
        if isinstance(v, int) and not -INT64_MAX - 1 <= v <= INT64_MAX:
            raise WireError(f"{where}.{k} is beyond a 64-bit integer")
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
    if not IDENTIFIER.fullmatch(doc["edge"]):
        raise WireError(f"edge {doc['edge'][:40]!r} is not an identifier")
    if not 0 < doc["ts"] <= MAX_TS_MS:
        raise WireError(f"ts {doc['ts']} is not a time InfluxDB can store")
    devices = doc.get("devices", {})
    if not isinstance(devices, dict):
        raise WireError("devices is not an object")
    bad = next((d for d in devices if not IDENTIFIER.fullmatch(d)), None)
    if bad is not None:
        raise WireError(f"device {bad[:40]!r} is not an identifier")
    return EdgeStats(doc["edge"], doc["boot"], doc["ts"],
                     _numbers(doc.get("edge_stats", {}), "edge_stats"),
                     {str(d): _numbers(v, f"devices.{d}") for d, v in devices.items()})
