"""Every line written to InfluxDB goes through one escaping function: hostile names and values
(control characters, commas, equals signs, spaces, quotes, backslashes, any Unicode) through
every line writer create exactly the intended measurements and series on a real InfluxDB
1.6.7; edge stats are checked at decode (ids, metric names, int64, times); a batch refused
whole is written again in halves so that its good lines are stored.

Seen before: a device name with "\\n" created a measurement ``EVIL2_measurement`` and an
untagged ``source_status`` row; on InfluxDB 2.x one malformed line refused the whole request."""

from __future__ import annotations

import asyncio
import re
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.engine import AlarmEvent
from edge.stats import EdgeStats, decode_stats, encode_stats
from edge.wire import WireError
from gateway.influx.schema import LineBuilder, escape_tag, gateway_stats_line, stats_lines
from gateway.influx.targets import PermanentError, influx_v1
from gateway.influx.writer import BatchingWriter
from gateway.settings import InfluxSettings
from tests import services
from tests.services import Server, influx_query

# the security suite (pytest -m security), item 2. line-protocol injection
pytestmark = pytest.mark.security

T = 1_800_000_000_000
HOSTILE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                  min_size=1, max_size=12)


def event(point: str, reason: str, user: str) -> AlarmEvent:
    return AlarmEvent(alarm_id=f"{point}:process", alarm_type="process", point=point,
                      source=point, equipment=point, console=point, kind="level", ts=T,
                      event="shelve", state="shelved", prev_state="unack", level=1,
                      level_name="H", prev_level=1, gb50493_level=None, priority=3,
                      value=1.0, limit=None, forecast_s=None, user=user, reason=reason,
                      annunciated=True, toxic=False)


def _visible(s: str) -> str:
    """A name as InfluxDB stores it: control characters became spaces, backslashes
    slashes."""
    return s.translate({c: " " for c in [*range(0x20), *range(0x7F, 0xA0)]}).replace("\\", "/")


def _text(s: str) -> str:
    """A string field as InfluxDB stores it: control characters became spaces."""
    return s.translate({c: " " for c in [*range(0x20), *range(0x7F, 0xA0)]})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(device=HOSTILE, edge=HOSTILE, text=HOSTILE, metric=HOSTILE)
def test_hostile_names_and_values_make_exactly_the_intended_series(
        influx_server: Server, device: str, edge: str, text: str, metric: str) -> None:
    db = f"h_{uuid.uuid4().hex[:10]}"
    services.influx_create_db(influx_server, db)
    try:
        body = stats_lines("E1", EdgeStats(edge, 1, T, {"polls_ok": 1, metric: 2},
                                           {device: {"online": 1}}))
        body += LineBuilder([]).events("E1", [event(device, text, text)])
        body += gateway_stats_line("E1", edge, {"alarm_events": 3}, T)
        assert body.count(b"\n") == 4        # one line each: no character broke a line
        sink = influx_v1(InfluxSettings(url=influx_server.url, database=db))

        async def write() -> None:
            await sink.write(body)
            await sink.close()
        asyncio.run(write())
        names = {r[0] for s in influx_query(influx_server, db, "SHOW MEASUREMENTS")
                 for r in s["values"]}
        assert names == {"edge_stats", "device_stats", "alarm_event", "gateway_stats"}
        series = [r[0] for s in influx_query(influx_server, db, "SHOW SERIES")
                  for r in s["values"]]
        assert len(series) == 4
        rows = influx_query(influx_server, db, "SELECT * FROM device_stats")
        cols = rows[0]["columns"]
        [row] = rows[0]["values"]
        got = dict(zip(cols, row, strict=True))
        # InfluxDB trims nothing inside a tag value; an all-blank one is kept as written
        assert got["device"] == _visible(device) and got["edge"] == _visible(edge)
        [ev] = influx_query(influx_server, db, "SELECT reason FROM alarm_event")[0]["values"]
        assert ev[1] == _text(text)
    finally:
        influx_query(influx_server, db, f"DROP DATABASE {db}")


def test_escape_tag_leaves_no_control_character() -> None:
    hostile = "a\nEVIL2_measurement value=1\r\x00\x1b[31m\x85,= \\"
    out = escape_tag(hostile)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in out)
    assert "\\," in out and "\\=" in out and "\\ " in out


def stats_doc(**over: object) -> bytes:
    base = EdgeStats("edge-01", 1, T, {"polls_ok": 1}, {"plc-1": {"online": 1}})
    doc = orjson.loads(encode_stats(base))
    doc.update(over)
    return orjson.dumps(doc)


@pytest.mark.parametrize(("over", "why"), [
    ({"edge": "edge 01"}, "edge 'edge 01' is not an identifier"),
    ({"devices": {"plc\nEVIL": {"online": 1}}}, "device 'plc\\nEVIL' is not an identifier"),
    ({"edge_stats": {"Polls": 1}}, "unusable name 'Polls'"),
    ({"edge_stats": {"pölls": 1}}, "unusable name 'pölls'"),
    ({"edge_stats": {"polls": 2**63}}, "edge_stats.polls is beyond a 64-bit integer"),
    ({"ts": 0}, "ts 0 is not a time InfluxDB can store"),
    ({"ts": 10**16}, "is not a time InfluxDB can store"),
])
def test_edge_stats_are_checked_at_decode(over: dict[str, object], why: str) -> None:
    with pytest.raises(WireError, match=re.escape(why)):
        decode_stats(stats_doc(**over))


class WholeRefusingSink:
    """InfluxDB 2.x refuses a whole request for one malformed line (no 1.x server here does:
    1.6.7 stores the rest as a partial write, VictoriaMetrics skips the line), so this
    stand-in reproduces that answer: a body with a bad line is refused whole."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []
        self.requests = 0

    async def write(self, body: bytes) -> None:
        self.requests += 1
        lines = body.splitlines()
        if any(b"BAD" in ln for ln in lines):
            raise PermanentError("HTTP 400: unable to parse 'BAD'", None)
        self.stored += lines

    async def close(self) -> None:
        return None


async def test_a_batch_refused_whole_is_written_in_halves_and_its_good_lines_stored() -> None:
    sink = WholeRefusingSink()
    good = [b"m,p=%d v=1 %d" % (i, T + i) for i in range(1000)]
    body = b"\n".join([*good[:500], b"BAD line", *good[500:]]) + b"\n"
    async with BatchingWriter(sink, batch_points=2000) as w:
        await w.put(body, 1001)
        await w.flush()
    assert sorted(sink.stored) == sorted(good)
    assert (w.stats.rejected_points, w.stats.points_written) == (1, 1000)
    assert sink.requests <= 2 * 11 + 1          # about log2(1001) levels of two halves
