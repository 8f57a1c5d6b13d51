"""InfluxDB line protocol, built per batch without a Python loop per point.

Measurement schema (fixed; documented in README.md):

``reading``      tags ``enterprise, source, equipment, point, kind``;
                 fields ``value`` (float, omitted when there is none), ``quality`` (integer
                 0 good, 1 uncertain, 2 bad, 3 stale); time = sample time (ms precision).
``alarm_event``  one row per alarm lifecycle event (see alerting.engine.AlarmEvent): tags
                 ``enterprise, source, equipment, point, kind, alarm_type, event, state,
                 level, priority, console``; fields ``level_code``, ``prev_level`` (integer),
                 ``annunciated`` (boolean), ``value``, ``limit``, ``forecast_s`` (float, when
                 known), ``user``, ``reason`` (string, when given); time = when it happened.

Floats are formatted by orjson (shortest round-trip form) and the lines are interleaved with
list slice assignment, so the whole batch is formatted in C: ~2 M points/s against ~1.2 M/s
for %-formatting per point.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import orjson

from alerting.batch import ReadingBatch
from alerting.engine import AlarmEvent

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def escape_tag(value: str) -> str:
    """Escape a tag key or value: commas, equals signs and spaces are significant."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _numbers(arr: npt.NDArray[np.generic]) -> list[bytes]:
    """Each element's decimal form, as bytes, formatted in one C call."""
    if len(arr) == 0:
        return []
    return orjson.dumps(arr, option=_NUMPY)[1:-1].split(b",")


class LineBuilder:
    """Formats readings and alarm events of one enterprise's points into line protocol."""

    def __init__(self, tags: list[dict[str, str]]) -> None:
        """``tags[i]`` are the tags of point i of the point table."""
        # One prefix per point ("reading,<tags> "): at 100 000 points these are a good part of
        # the core's memory, so "value=" is a slot of its own, empty for readings without one.
        self._prefix = np.array(
            [("reading," + ",".join(f"{escape_tag(k)}={escape_tag(v)}"
                                    for k, v in t.items() if v) + " ").encode() for t in tags],
            dtype=object)
        self._value_key = np.array([b"value=", b""], dtype=object)
        mids = [b",quality=%di " % q for q in range(4)] + [b"quality=%di " % q for q in range(4)]
        self._mid = np.array(mids, dtype=object)

    def readings(self, batch: ReadingBatch) -> bytes:
        """Line protocol for every reading of the batch with a known point."""
        keep = batch.point >= 0
        if not keep.all():
            batch = batch.take(np.flatnonzero(keep))
        n = len(batch)
        if n == 0:
            return b""
        missing = ~np.isfinite(batch.value)
        values = _numbers(batch.value)
        flat: list[bytes] = [b"\n"] * (6 * n)
        flat[0::6] = self._prefix[batch.point].tolist()
        if missing.any():
            vals = np.array(values, dtype=object)
            vals[missing] = b""
            values = vals.tolist()
            flat[1::6] = self._value_key[missing.astype(np.intp)].tolist()
        else:
            flat[1::6] = [b"value="] * n
        flat[2::6] = values
        flat[3::6] = self._mid[batch.quality.astype(np.intp) + 4 * missing].tolist()
        flat[4::6] = _numbers(batch.ts_ms)
        return b"".join(flat)

    def events(self, enterprise: str, events: list[AlarmEvent]) -> bytes:
        """Line protocol for alarm events (few per batch, so formatted per event)."""
        lines = []
        ent = escape_tag(enterprise)
        for e in events:
            tags = (f"alarm_event,enterprise={ent},source={escape_tag(e.source or '-')},"
                    f"equipment={escape_tag(e.equipment or '-')},"
                    f"point={escape_tag(e.point or e.alarm_id.rsplit(':', 1)[0])},"
                    f"kind={escape_tag(e.kind)},alarm_type={e.alarm_type},event={e.event},"
                    f"state={e.state},level={e.level_name},priority={e.priority},"
                    f"console={escape_tag(e.console)}")
            fields = [f"level_code={e.level}i", f"prev_level={e.prev_level}i",
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
