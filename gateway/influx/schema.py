"""The InfluxDB measurement schema: every measurement's name, tags and fields, and their
line formatting, with one escaping function. Nothing else in the gateway writes line protocol
by hand; the dashboards take the names from ``MEASUREMENTS`` (a test checks every panel
query against it).

``reading``        tags ``enterprise, source, equipment, point, kind``; fields ``value``
                   (float, omitted when there is none), ``quality`` (integer 0 good,
                   1 uncertain, 2 bad, 3 stale, written sparsely: see below),
                   ``quality_detail`` (integer, only on a reading that has one: the Modbus
                   exception code of a block its device refused); time = sample time (ms
                   precision).
``alarm_event``    one row per alarm lifecycle event (``alerting.engine.AlarmEvent``): tags
                   ``enterprise, source, equipment, point, kind, alarm_type, console``; fields
                   ``event``, ``state``, ``level`` (string: as shown, a latching alarm's
                   highest level until reset), ``priority``, ``level_code``, ``prev_level``,
                   ``current_level`` (integer: the condition now), ``annunciated``
                   (boolean), ``value``, ``limit``,
                   ``forecast_s`` (float, when known), ``user``, ``reason`` (string, when
                   given); time = when it happened.
``alarm_health``   per console: alarm rates, flood state and lifecycle counts (integers).
``source_status``  per hazard source: GB 18218 level, status, alarms standing and
                   unacknowledged, points and points off line (``gateway.stream.status``).
``point_limits``   per point: its configured lolo, lo, hi, hihi.
``gateway_stats``  the gateway's self-metrics (``gateway.stream.selfmetrics``).
``audit_anchor``   the audit log's head as it was: ``id`` (integer), ``hash`` (string), every
                   ``HAZGW_AUDIT__SEAL_EVERY_S`` (``gateway.store.audit``).
``edge_stats``,    the edges' self-metrics as the edges name them (``edge.stats``).
``device_stats``

Integers are clamped to int64 (InfluxDB refuses the whole line otherwise), non-finite floats
are left out (line protocol has no NaN). One escaping function (``escape_tag``) writes every
name: control characters become spaces (line protocol cannot escape a line break: a device
name with one wrote a measurement of its own) and backslashes slashes (InfluxDB 1.x cannot
parse one at the end of a name); string fields lose their control characters too. Edge stats
are checked before they get here (``edge.stats``: ids, metric names, int64, times).

``quality`` is a state, written as one: on a reading whose quality differs from its point's
previous reading, on a point's first reading after start and in each ``QUALITY_PERIOD_MS``
(10 minutes, aligned to the epoch, so every Beijing day starts a period), and on every reading
without a value. A reading without the field has its point's previous quality, so
``last("quality")`` with ``fill(previous)`` reads it back, and a query over a day or a
10-minute multiple finds each reporting point's quality in it. The reason is InfluxDB's cost:
it spends its CPU per field value, and a second field on every reading nearly doubled it
(~11.7 against ~6.5 µs of its CPU per reading, 100 000 points, InfluxDB 1.6.7 on the bench
machine), while the quality of a healthy plant changes rarely.

Readings' floats are formatted by orjson (shortest round-trip form) and the lines are
interleaved with list slice assignment, so the whole batch is formatted in C: ~2.4 M points/s
against ~1.2 M/s for %-formatting per point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent
from alerting.grouping import group
from edge.stats import EdgeStats

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
QUALITY_PERIOD_MS = 600_000
_QUALITIES = 4
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Measurement:
    """One measurement: its name, its tag keys and (where fixed) its field keys."""

    name: str
    tags: tuple[str, ...]
    fields: tuple[str, ...] = ()      # empty: fields are named by the writer (edge stats)


_POINT_TAGS = ("enterprise", "source", "equipment", "point", "kind")
READING = Measurement("reading", _POINT_TAGS, ("value", "quality", "quality_detail"))
ALARM_EVENT = Measurement(
    "alarm_event", (*_POINT_TAGS, "alarm_type", "console"),
    ("event", "state", "level", "priority", "level_code", "prev_level", "current_level",
     "annunciated",
     "value", "limit", "forecast_s", "user", "reason"))
ALARM_HEALTH = Measurement("alarm_health", ("enterprise", "console"))
SOURCE_STATUS = Measurement("source_status", ("enterprise", "source"),
                            ("level", "status", "alarms_standing", "alarms_unacked", "points",
                             "points_offline"))
POINT_LIMITS = Measurement("point_limits", _POINT_TAGS, ("lolo", "lo", "hi", "hihi"))
GATEWAY_STATS = Measurement("gateway_stats", ("enterprise", "instance"))
EDGE_STATS = Measurement("edge_stats", ("enterprise", "edge"))
DEVICE_STATS = Measurement("device_stats", ("enterprise", "edge", "device"))
AUDIT_ANCHOR = Measurement("audit_anchor", ("enterprise",), ("id", "hash"))
MEASUREMENTS: dict[str, Measurement] = {m.name: m for m in (
    READING, ALARM_EVENT, ALARM_HEALTH, SOURCE_STATUS, POINT_LIMITS, GATEWAY_STATS,
    EDGE_STATS, DEVICE_STATS, AUDIT_ANCHOR)}

Field = int | float | bool | str | None


# Control characters (C0, DEL, C1) cannot be escaped in line protocol: a line break ends the
# line (a device name with "\n" wrote a measurement of its own), the others are refused or
# stored as garbage. Each becomes a space (then escaped).
_CONTROL = {c: " " for c in [*range(0x20), *range(0x7F, 0xA0)]}
# InfluxDB 1.x does not unescape a backslash in a key or tag value (it stores "\\" as two)
# and cannot parse one at the end of it in any form: a name's backslash becomes "/".
_NAME = {**_CONTROL, ord("\\"): "/"}


def escape_tag(value: str) -> str:
    """Escape a tag key or value (also a measurement's or a field's name): commas, equals
    signs and spaces are significant; control characters become spaces and backslashes
    slashes. The one escaping function of every name written (``line``, ``tag_set``,
    ``LineBuilder``); ids checked at decode never need more than the escapes."""
    return (value.translate(_NAME).replace(",", "\\,").replace("=", "\\=")
            .replace(" ", "\\ "))


def _field(value: Field) -> str | None:
    """One field value in line protocol (None: not writable, left out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{max(-INT64_MAX - 1, min(INT64_MAX, value))}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        # control characters (a line break in an operator's reason) become spaces: the
        # database's alarm history keeps the text as typed
        return '"' + value.translate(_CONTROL).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return None


def tag_set(m: Measurement, tags: Mapping[str, str]) -> str:
    """``name,k=v,...`` for the tags given (empty values left out); a tag the measurement
    does not have is a programming error."""
    unknown = set(tags) - set(m.tags)
    if unknown:
        raise KeyError(f"{m.name} has no tag {sorted(unknown)}")
    return ",".join([m.name, *(f"{k}={escape_tag(v)}" for k, v in tags.items() if v)])


def line(m: Measurement, tags: Mapping[str, str], fields: Mapping[str, Field],
         ts_ms: int | None) -> str:
    """One line with its newline ("" when no field is writable); ``ts_ms`` None leaves the
    time out (a template that a caller completes)."""
    if m.fields:
        unknown = set(fields) - set(m.fields)
        if unknown:
            raise KeyError(f"{m.name} has no field {sorted(unknown)}")
    body = ",".join(f"{escape_tag(k)}={v}" for k, v in
                    ((k, _field(x)) for k, x in fields.items()) if v is not None)
    if not body:
        return ""
    return f"{tag_set(m, tags)} {body}" + ("" if ts_ms is None else f" {ts_ms}") + "\n"


def lines(rows: list[str]) -> bytes:
    """The rows as one request body."""
    return "".join(rows).encode()


def anchor_line(enterprise: str, record_id: int, record_hash: str, ts_ms: int) -> bytes:
    """The audit log's head, anchored outside the database."""
    return line(AUDIT_ANCHOR, {"enterprise": enterprise},
                {"id": record_id, "hash": record_hash}, ts_ms).encode()


def stats_lines(enterprise: str, s: EdgeStats) -> bytes:
    """``edge_stats`` and ``device_stats`` of one edge stats message (empty groups left
    out; integers stay integers)."""
    base = {"enterprise": enterprise, "edge": s.edge}
    rows = [line(EDGE_STATS, base, s.edge_stats, s.ts_ms)] if s.edge_stats else []
    rows += [line(DEVICE_STATS, {**base, "device": d}, v, s.ts_ms)
             for d, v in s.devices.items() if v]
    return lines(rows)


def gateway_stats_line(enterprise: str, instance: str, values: Mapping[str, int],
                       ts_ms: int) -> bytes:
    """One ``gateway_stats`` line."""
    return lines([line(GATEWAY_STATS, {"enterprise": enterprise, "instance": instance},
                       values, ts_ms)])


def _numbers(arr: npt.NDArray[np.generic], before: bytes = b"", after: bytes = b"",
             ) -> list[bytes]:
    """Each element's decimal form between ``before`` and ``after``, as bytes, formatted in
    a few C calls (orjson, then one replace and one split over the whole text)."""
    if len(arr) == 0:
        return []
    body = orjson.dumps(arr, option=_NUMPY)[1:-1]
    if before or after:
        body = before + body.replace(b",", after + b"," + before) + after
    return body.split(b",")


class LineBuilder:
    """Formats readings and alarm events of one enterprise's points into line protocol."""

    def __init__(self, tags: list[dict[str, str]]) -> None:
        """``tags[i]`` are the tags of point i of the point table."""
        # One prefix per point ("reading,<tags> "): at 100 000 points these are a good part of
        # the core's memory, so they hold no field.
        self._prefix = np.array([(tag_set(READING, t) + " ").encode() for t in tags],
                                dtype=object)
        self._quality_field = np.array([b",quality=%di" % q for q in range(_QUALITIES)], object)
        self._quality_alone = np.array([b"quality=%di" % q for q in range(_QUALITIES)], object)
        # per point: (period, quality) of the last reading formatted, -1 before the first
        self._written = np.full(len(tags), -1, np.int64)

    def _with_quality(self, batch: ReadingBatch) -> npt.NDArray[np.bool_]:
        """Which readings carry the quality field (see the module docstring); remembers
        each point's last (period, quality), taking its readings in time order."""
        key = (batch.ts_ms // QUALITY_PERIOD_MS) * _QUALITIES + batch.quality
        g = group(batch.point, batch.ts_ms, np.ones(len(batch), bool))
        ordered = key[g.order]
        changed = ordered != g.previous(ordered, self._written)
        g.store(self._written, ordered)
        out = np.empty(len(batch), bool)
        out[g.order] = changed
        return out

    def readings(self, batch: ReadingBatch) -> bytes:
        """Line protocol for every reading of the batch with a known point."""
        keep = batch.point >= 0
        if not keep.all():
            batch = batch.take(np.flatnonzero(keep))
        n = len(batch)
        if n == 0:
            return b""
        # Three pieces a line (prefix, field, " time\n"): bytes.join costs per piece, and it
        # was most of the formatting time with six.
        fields = _numbers(batch.value, b"value=")
        times = _numbers(batch.ts_ms, b" ", b"\n")
        missing = ~np.isfinite(batch.value)
        quality = self._with_quality(batch) & ~missing
        q = batch.quality.astype(np.intp)
        if quality.any():
            # " time" → ",quality=q time" (numpy's object add: bytes + bytes, looped in C)
            arr = np.array(times, dtype=object)
            arr[quality] = self._quality_field[q[quality]] + arr[quality]
            times = arr.tolist()
        if missing.any():
            arr = np.array(fields, dtype=object)
            arr[missing] = self._quality_alone[q[missing]]
            fields = arr.tolist()
        flat: list[bytes] = [b""] * (3 * n)
        flat[0::3] = self._prefix[batch.point].tolist()
        flat[1::3] = fields
        flat[2::3] = times
        return b"".join(flat)

    def details(self, point: npt.NDArray[np.int32], ts_ms: npt.NDArray[np.int64],
                detail: npt.NDArray[np.uint8]) -> bytes:
        """Lines of ``quality_detail`` for the readings that have one (few: a refused
        block's points). InfluxDB merges them into the reading of the same series and time,
        so the detail stands beside that reading's ``quality``."""
        rows = np.flatnonzero((detail != 0) & (point >= 0))
        return b"".join(self._prefix[point[i]] + b"quality_detail=%di %d\n"
                        % (detail[i], ts_ms[i]) for i in rows.tolist())

    def events(self, enterprise: str, events: list[AlarmEvent]) -> bytes:
        """Line protocol for alarm events (few per batch, so formatted per event)."""
        # Tags only what bounds a point's series (its alarm types): event, state, level and
        # priority as tags made a series of each combination met, ~150 000 new series in a
        # minute of the bench's alarm load, each a cost to InfluxDB's index.
        return lines([line(ALARM_EVENT, {
            "enterprise": enterprise, "source": e.source or "-",
            "equipment": e.equipment or "-",
            "point": e.point or e.alarm_id.rsplit(":", 1)[0], "kind": e.kind,
            "alarm_type": e.alarm_type, "console": e.console,
        }, {
            "event": e.event, "state": e.state, "level": e.level_name,
            "priority": int(e.priority), "level_code": int(e.level),
            "prev_level": int(e.prev_level), "current_level": int(e.current_level),
            "annunciated": bool(e.annunciated),
            "value": _float(e.value), "limit": _float(e.limit),
            "forecast_s": _float(e.forecast_s), "user": e.user or None,
            "reason": e.reason or None,
        }, e.ts) for e in events])


def _float(x: float | None) -> float | None:
    return None if x is None else float(x)
