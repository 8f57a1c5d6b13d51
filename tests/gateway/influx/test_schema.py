"""The measurement schema: readings' fields and quality written as a state on change; one
formatter and one escaping for every measurement; the dashboards' queries name only what it
defines."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from alerting.batch import ReadingBatch
from edge.stats import EdgeStats
from gateway.dashboards.build import all_dashboards
from gateway.influx.schema import (
    ALARM_EVENT,
    GATEWAY_STATS,
    MEASUREMENTS,
    POINT_LIMITS,
    QUALITY_PERIOD_MS,
    READING,
    SOURCE_STATUS,
    LineBuilder,
    line,
    stats_lines,
)
from gateway.influx.targets import influx_v1
from gateway.settings import InfluxSettings
from tests.services import Server, influx_query

T0 = 1_767_225_600_000          # 2026-01-01 00:00 Beijing: a period starts here


def batch(rows: list[tuple[int, int, float, int]]) -> ReadingBatch:
    """(point, ts, value, quality) rows."""
    p, t, v, q = zip(*rows, strict=True)
    return ReadingBatch(np.array(p, np.int32), np.array(t, np.int64), np.array(v, float),
                        np.array(q, np.uint8))


def parsed(body: bytes) -> list[tuple[str, int, dict[str, str]]]:
    """(point, ts, fields) of each line."""
    out = []
    for row in body.decode().splitlines():
        series, fields, ts = row.split(" ")
        point = series.split("point=")[1]
        out.append((point, int(ts), dict(f.split("=") for f in fields.split(","))))
    return out


def test_quality_is_written_on_change_first_reading_period_and_missing_value() -> None:
    lines = LineBuilder([{"point": "a"}, {"point": "b"}])
    first = parsed(lines.readings(batch([
        (0, T0, 1.0, 0), (1, T0, 2.0, 0),               # first readings: quality written
        (0, T0 + 1000, 1.5, 0),                          # unchanged: value alone
        (0, T0 + 2000, np.nan, 2),                       # no value: quality alone
        (0, T0 + 3000, 1.7, 1),                          # changed: both
        (1, T0 + 3000, 2.1, 0)])))
    assert first == [
        ("a", T0, {"value": "1.0", "quality": "0i"}),
        ("b", T0, {"value": "2.0", "quality": "0i"}),
        ("a", T0 + 1000, {"value": "1.5"}),
        ("a", T0 + 2000, {"quality": "2i"}),
        ("a", T0 + 3000, {"value": "1.7", "quality": "1i"}),
        ("b", T0 + 3000, {"value": "2.1"})]
    # the builder remembers across batches; a new period writes each point's quality again
    later = parsed(lines.readings(batch([
        (0, T0 + 4000, 1.8, 1), (1, T0 + 4000, 2.2, 0),
        (0, T0 + QUALITY_PERIOD_MS, 1.9, 1), (1, T0 + QUALITY_PERIOD_MS + 5, 2.3, 0)])))
    assert [f for _, _, f in later] == [
        {"value": "1.8"}, {"value": "2.2"},
        {"value": "1.9", "quality": "1i"}, {"value": "2.3", "quality": "0i"}]


def series(n: int, seed: int) -> ReadingBatch:
    """Three points reporting every 20 s for ``n`` readings each, qualities changing now
    and then, some values missing; in time order."""
    rng = np.random.default_rng(seed)
    ts = np.repeat(T0 - 300_000 + 20_000 * np.arange(n, dtype=np.int64), 3)
    point = np.tile(np.arange(3, dtype=np.int32), n)
    quality = np.where(rng.random(3 * n) < 0.15, rng.integers(1, 4, 3 * n), 0).astype(np.uint8)
    value = np.where(quality == 2, np.nan, rng.normal(5, 1, 3 * n))
    return ReadingBatch(point, ts, value, quality)


def test_lines_do_not_depend_on_how_the_readings_are_batched() -> None:
    tags = [{"point": p} for p in ("a", "b", "c")]
    whole = series(120, 3)
    one = LineBuilder(tags).readings(whole)
    rng = np.random.default_rng(4)
    cuts = np.sort(rng.choice(np.arange(1, len(whole)), 40, replace=False))
    builder = LineBuilder(tags)
    pieces = [builder.readings(whole.take(idx)) for idx in np.split(np.arange(len(whole)), cuts)]
    assert b"".join(pieces) == one
    singly = LineBuilder(tags)
    assert b"".join(singly.readings(whole.take(np.array([i]))) for i in range(len(whole))) == one


def test_readings_in_a_batch_count_in_time_order() -> None:
    lines = LineBuilder([{"point": "a"}])
    # listed out of order: the change is the reading at T0 + 1000, the one at T0 + 2000 repeats
    out = parsed(lines.readings(batch([(0, T0 + 2000, 2.0, 1), (0, T0, 0.0, 0),
                                       (0, T0 + 1000, 1.0, 1)])))
    assert {ts: f for _, ts, f in out} == {
        T0: {"value": "0.0", "quality": "0i"}, T0 + 1000: {"value": "1.0", "quality": "1i"},
        T0 + 2000: {"value": "2.0"}}


async def test_each_readings_quality_reads_back_from_influxdb(influx_server: Server,
                                                               influx_db: str) -> None:
    whole = series(60, 7)           # 20 minutes across a period boundary
    sink = influx_v1(InfluxSettings(url=influx_server.url, database=influx_db))
    try:
        await sink.write(LineBuilder([{"point": p} for p in ("a", "b", "c")]).readings(whole))
    finally:
        await sink.close()
    start, stop = int(whole.ts_ms[0]), int(whole.ts_ms[-1])
    rows = influx_query(influx_server, influx_db,
                        f'SELECT last("quality") FROM reading WHERE time >= {start}ms AND '
                        f"time <= {stop}ms GROUP BY time(20s), point fill(previous)")
    got = {(s["tags"]["point"], r[0]): r[1] for s in rows for r in s["values"]}
    names = np.array(["a", "b", "c"])[whole.point]
    expected: dict[tuple[str, int], int] = {
        (str(p), int(t)): int(q) for p, t, q in zip(names, whole.ts_ms, whole.quality,
                                                    strict=True)}
    assert {k: got.get(k) for k in expected} == expected
    written = influx_query(influx_server, influx_db, 'SELECT count("quality") FROM reading')
    assert 0 < written[0]["values"][0][1] < len(whole)     # sparse, yet every quality is there


# --- the measurement schema: one formatter, one escaping, the dashboards agree ------------

STATS = EdgeStats("edge-01", 1, 1_700_000_000_000,
                  {"readings_published": 90, "spool_messages": 0},
                  {"plc 1": {"polls_ok": 10, "latency_avg_ms": 1.5}})


def test_edge_stats_lines() -> None:
    assert stats_lines("E1", STATS).decode().splitlines() == [
        "edge_stats,enterprise=E1,edge=edge-01 readings_published=90i,spool_messages=0i "
        "1700000000000",
        r"device_stats,enterprise=E1,edge=edge-01,device=plc\ 1 polls_ok=10i,"
        "latency_avg_ms=1.5 1700000000000"]


def test_a_line_break_in_a_tag_cannot_start_a_line_of_its_own() -> None:
    evil = EdgeStats("e", 1, 5, {}, {"d\nEVIL2_measurement x=1i 1\nsource_status": {"ok": 1}})
    body = stats_lines("E1", evil).decode()
    assert body.count("\n") == 1 and body.startswith("device_stats,")
    assert "EVIL2" in body.split(" 5\n")[0]          # kept, inside the escaped tag value


def test_integers_are_clamped_to_int64_and_non_finite_floats_left_out() -> None:
    body = line(GATEWAY_STATS, {"enterprise": "E", "instance": "i"},
                {"missing": 2**64 + 5, "low": -(2**70)}, 7)
    assert body == (f"gateway_stats,enterprise=E,instance=i missing={2**63 - 1}i,"
                    f"low={-(2**63)}i 7\n")
    assert line(POINT_LIMITS, {"point": "p"}, {"hi": math.nan, "lo": math.inf}, 7) == ""
    assert line(POINT_LIMITS, {"point": "p"}, {"hi": 25.0, "lo": -math.inf}, 7) == \
        "point_limits,point=p hi=25.0 7\n"


def test_strings_are_escaped_and_unknown_names_refused() -> None:
    assert line(ALARM_EVENT, {"point": "a b,c=d"}, {"reason": 'say "hi" \\'}, 1) == \
        'alarm_event,point=a\\ b\\,c\\=d reason="say \\"hi\\" \\\\" 1\n'
    with pytest.raises(KeyError, match="no tag"):
        line(READING, {"device": "x"}, {"value": 1.0}, 1)
    with pytest.raises(KeyError, match="no field"):
        line(SOURCE_STATUS, {"source": "x"}, {"colour": 1}, 1)


FROM = re.compile(r'FROM "([a-z_]+)"')
SELECTED = re.compile(r'(?:last|mean|count|sum|max|min)\("([a-z_]+)"\)')
GROUPED = re.compile(r'GROUP BY (?:time\([^)]*\), )?((?:"[a-z_]+"(?:, )?)+)')


def panel_queries() -> list[str]:
    out = []
    for d in all_dashboards().values():
        for p in d["panels"]:
            out += [t["query"] for t in p["targets"] if t.get("datasource", {}).get("type")
                    == "influxdb" and "query" in t]
        out += [v["query"] for v in d["templating"]["list"]
                if isinstance(v.get("query"), str) and "FROM" in v["query"]]
    return out


def test_every_influx_query_of_the_dashboards_uses_the_schema() -> None:
    queries = panel_queries()
    assert len(queries) > 20
    for q in queries:
        names = FROM.findall(q)
        assert names, q
        ms = [MEASUREMENTS[n] for n in names if n in MEASUREMENTS]
        assert len(ms) == len(names), f"unknown measurement in {q}"
        m = ms[-1]                               # the innermost FROM names the data
        for g in GROUPED.findall(q):
            for tag in re.findall(r'"([a-z_]+)"', g):
                assert tag in m.tags, f"{m.name} has no tag {tag}: {q}"
        if m.fields:
            for f in SELECTED.findall(q):
                assert f in m.fields or f in m.tags or f == "v", f"{m.name}.{f}: {q}"
