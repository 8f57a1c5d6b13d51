"""InfluxDB line protocol, built per batch without a Python loop per point.

Measurement schema (fixed; documented in README.md):

``reading``      tags ``enterprise, source, equipment, point, kind``;
                 fields ``value`` (float, omitted when there is none), ``quality`` (integer
                 0 good, 1 uncertain, 2 bad, 3 stale, written sparsely: see below);
                 time = sample time (ms precision).
``alarm_event``  one row per alarm lifecycle event (see alerting.engine.AlarmEvent): tags
                 ``enterprise, source, equipment, point, kind, alarm_type, console``; fields
                 ``event``, ``state``, ``level`` (string), ``priority``, ``level_code``,
                 ``prev_level`` (integer), ``annunciated`` (boolean), ``value``, ``limit``,
                 ``forecast_s`` (float, when known), ``user``, ``reason`` (string, when
                 given); time = when it happened.

``quality`` is a state, written as one: on a reading whose quality differs from its point's
previous reading, on a point's first reading after start and in each ``QUALITY_PERIOD_MS``
(10 minutes, aligned to the epoch, so every Beijing day starts a period), and on every reading
without a value. A reading without the field has its point's previous quality, so
``last("quality")`` with ``fill(previous)`` reads it back, and a query over a day or a
10-minute multiple finds each reporting point's quality in it. The reason is InfluxDB's cost:
it spends its CPU per field value, and a second field on every reading nearly doubled it
(~11.7 against ~6.5 µs of its CPU per reading, 100 000 points, InfluxDB 1.6.7 on the bench
machine), while the quality of a healthy plant changes rarely.

Floats are formatted by orjson (shortest round-trip form) and the lines are interleaved with
list slice assignment, so the whole batch is formatted in C: ~2.4 M points/s against ~1.2 M/s
for %-formatting per point.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import orjson

from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent
from alerting.grouping import group

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
QUALITY_PERIOD_MS = 600_000
_QUALITIES = 4


def escape_tag(value: str) -> str:
    """Escape a tag key or value: commas, equals signs and spaces are significant."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


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
        self._prefix = np.array(
            [("reading," + ",".join(f"{escape_tag(k)}={escape_tag(v)}"
                                    for k, v in t.items() if v) + " ").encode() for t in tags],
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

    def events(self, enterprise: str, events: list[AlarmEvent]) -> bytes:
        """Line protocol for alarm events (few per batch, so formatted per event)."""
        lines = []
        ent = escape_tag(enterprise)
        for e in events:
            # Tags only what bounds a point's series (its alarm types): event, state, level and
            # priority as tags made a series of each combination met, ~150 000 new series
            # in a minute of the bench's alarm load, each a cost to InfluxDB's index.
            tags = (f"alarm_event,enterprise={ent},source={escape_tag(e.source or '-')},"
                    f"equipment={escape_tag(e.equipment or '-')},"
                    f"point={escape_tag(e.point or e.alarm_id.rsplit(':', 1)[0])},"
                    f"kind={escape_tag(e.kind)},alarm_type={e.alarm_type},"
                    f"console={escape_tag(e.console)}")
            fields = [f'event="{e.event}"', f'state="{e.state}"',
                      f'level="{escape_string(e.level_name)}"', f"priority={e.priority}i",
                      f"level_code={e.level}i", f"prev_level={e.prev_level}i",
                      f"annunciated={str(e.annunciated).lower()}"]
            for name, val in (("value", e.value), ("limit", e.limit),
                              ("forecast_s", e.forecast_s)):
                if val is not None:
                    fields.append(f"{name}={float(val)!r}")
            for name, text in (("user", e.user), ("reason", e.reason)):
                if text:
                    fields.append(f'{name}="{escape_string(text)}"')
            lines.append(f"{tags} {','.join(fields)} {e.ts}")
        return ("\n".join(lines) + "\n").encode() if lines else b""


def escape_string(value: str) -> str:
    """Escape a string field value: backslashes and double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
