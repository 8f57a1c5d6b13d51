"""The control room's Grafana dashboards, as code: ``hazgw grafana build`` writes them to
``grafana/dashboards/`` (a test fails when the files are stale) and ``hazgw grafana push``
uploads them. Queries are InfluxQL (every InfluxDB generation answers it) and PostgreSQL for
the hazard register; they use only the measurements, tags and fields of the README's schema,
and a test runs every one against real servers filled by a simulated plant.
"""

from __future__ import annotations

from typing import Any

from gateway.influx.schema import (
    ALARM_HEALTH,
    GATEWAY_STATS,
    POINT_LIMITS,
    READING,
    SOURCE_STATUS,
)
from gateway.stream.status import LIMITS_EVERY_MS

INFLUX = {"type": "influxdb", "uid": "hazgw-influxdb"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "hazgw-postgres"}
Json = dict[str, Any]

LEVELS = {"0": ("–", "text"), "1": ("一级 I", "dark-red"), "2": ("二级 II", "red"),
          "3": ("三级 III", "orange"), "4": ("四级 IV", "yellow")}
STATUS = {"0": ("normal", "green"), "1": ("attention", "yellow"), "2": ("ALARM", "red")}
# EEMUA 191 annunciation rates per operator per 10 min (domain.md §6.3): < 1 the goal, 2
# manageable, 5 excessive demands; > 10 is an ISA-18.2 flood.
EEMUA = [(1, "green"), (2, "yellow"), (5, "orange"), (10, "red")]
OPEN = "state <> 'closed'"
NOW_MS = "(extract(epoch from now()) * 1000)"


def influx(query: str, fmt: str = "time_series", ref: str = "A", alias: str = "") -> Json:
    """An InfluxQL target."""
    t: Json = {"refId": ref, "datasource": INFLUX, "rawQuery": True, "resultFormat": fmt,
               "query": query}
    if alias:
        t["alias"] = alias
    return t


def sql(query: str, fmt: str = "table", ref: str = "A") -> Json:
    """A PostgreSQL target."""
    return {"refId": ref, "datasource": POSTGRES, "rawQuery": True, "editorMode": "code",
            "format": fmt, "rawSql": query}


def mappings(table: dict[str, tuple[str, str]]) -> list[Json]:
    """Value → text and colour."""
    return [{"type": "value", "options": {k: {"text": text, "color": colour, "index": i}
                                          for i, (k, (text, colour)) in enumerate(table.items())}}]


def panel(kind: str, title: str, targets: list[Json], w: int = 12, h: int = 8,
          unit: str = "", **extra: Any) -> Json:
    """A panel; ``extra`` merges into it (fieldConfig, options, repeat, transformations)."""
    p: Json = {"type": kind, "title": title, "targets": targets,
               "datasource": targets[0]["datasource"], "gridPos": {"w": w, "h": h},
               "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
               "options": {}}
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(p.get(k), dict):
            p[k] = {**p[k], **v}
        else:
            p[k] = v
    return p


def thresholds(steps: list[tuple[float | None, str]], line: bool = False) -> Json:
    """fieldConfig drawing thresholds (as lines on a time series when ``line``)."""
    d: Json = {"thresholds": {"mode": "absolute", "steps": [
        {"value": v, "color": c} for v, c in steps]}}
    if line:
        d["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return {"defaults": d, "overrides": []}


def variable(name: str, query: str, label: str = "", multi: bool = True) -> Json:
    """A query variable over InfluxDB tag values (all selected by default)."""
    return {"name": name, "label": label or name, "type": "query", "datasource": INFLUX,
            "query": query, "refresh": 2, "multi": multi, "includeAll": True,
            "current": {"text": "All", "value": "$__all"}}


def dashboard(uid: str, title: str, panels: list[Json], variables: list[Json] | None = None,
              annotations: list[Json] | None = None, description: str = "") -> Json:
    """A dashboard: panels flow left to right, rows by width; ids and positions assigned."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["id"], p["gridPos"] = i, {"x": x, "y": y, "w": w, "h": h}
        x, row_h = x + w, max(row_h, h)
    return {"uid": uid, "title": title, "description": description, "tags": ["hazgw"],
            "schemaVersion": 39, "version": 1, "editable": True, "refresh": "10s",
            "time": {"from": "now-6h", "to": "now"}, "timezone": "browser",
            "templating": {"list": variables or []},
            "annotations": {"list": annotations or []}, "panels": panels}


def _series(where: str, by: str = '"point"', agg: str = 'mean("value")') -> str:
    return (f'SELECT {agg} FROM "{READING.name}" WHERE {where} AND $timeFilter '
            f"GROUP BY time($__interval), {by} fill(null)")


def _limits(where: str, names: tuple[str, str] = ("H", "HH")) -> str:
    # each point's limits are rewritten every LIMITS_EVERY_MS: look back that far (and a
    # minute more) before the range, so fill(previous) draws them from its first bucket
    back = LIMITS_EVERY_MS // 60_000 + 1
    return (f'SELECT last("hi") AS "{names[0]}", last("hihi") AS "{names[1]}" FROM '
            f'"{POINT_LIMITS.name}" WHERE {where} AND time >= ${{__from}}ms - {back}m AND '
            "time <= ${__to}ms GROUP BY time($__interval) fill(previous)")


def _last_status(field: str) -> str:
    return (f'SELECT sum("v") FROM (SELECT last("{field}") AS "v" FROM "{SOURCE_STATUS.name}" '
            'WHERE $timeFilter GROUP BY "source")')


SOURCES_IN_ALARM = ('SELECT count("v") FROM (SELECT last("status") AS "v" FROM "source_status" '
                    'WHERE $timeFilter GROUP BY "source") WHERE "v" = 2')
# the lifecycle events that annunciate an alarm anew: an ISA-18.2 bad actor is counted by
# them (a chattering L1 ↔ L2 raises without activating again)
ANNUNCIATING_EVENTS = "/^(activate|raise|re-alarm)$/"


def zero_when_empty(field_config: Json) -> Json:
    """A count with no rows is 0, not "No data"."""
    field_config["defaults"]["noValue"] = "0"
    return field_config


def plant_overview() -> Json:
    table = influx('SELECT last("level") AS "GB 18218 level", last("status") AS "status", '
                   'last("alarms_standing") AS "alarms", last("alarms_unacked") AS "unacked", '
                   'last("points_offline") AS "points off line", last("points") AS "points" '
                   'FROM "source_status" WHERE $timeFilter GROUP BY "source"', "table")
    overrides = [
        {"matcher": {"id": "byName", "options": "GB 18218 level"}, "properties": [
            {"id": "mappings", "value": mappings(LEVELS)},
            {"id": "custom.cellOptions", "value": {"type": "color-background"}}]},
        {"matcher": {"id": "byName", "options": "status"}, "properties": [
            {"id": "mappings", "value": mappings(STATUS)},
            {"id": "custom.cellOptions", "value": {"type": "color-background"}}]}]
    events = influx('SELECT "source", "point", "level", "event", "state", "value", "limit" '
                    'FROM "alarm_event" WHERE "annunciated" = true AND $timeFilter '
                    "ORDER BY time DESC LIMIT 50", "table")
    return dashboard("hazgw-plant-overview", "Plant overview", [
        panel("table", "Hazard sources: level, status, alarms, points off line", [table],
              w=24, h=8, fieldConfig={"defaults": {}, "overrides": overrides}),
        panel("stat", "Alarms standing", [influx(_last_status("alarms_standing"))], w=6, h=5,
              fieldConfig=thresholds([(None, "green"), (1, "red")])),
        panel("stat", "Unacknowledged", [influx(_last_status("alarms_unacked"))], w=6, h=5,
              fieldConfig=thresholds([(None, "green"), (1, "red")])),
        panel("stat", "Points off line", [influx(_last_status("points_offline"))], w=6, h=5,
              fieldConfig=thresholds([(None, "green"), (1, "yellow")])),
        # sources whose latest status is ALARM (2): counted, not summed (a sum of 2s counted
        # each twice), and filtered after ``last`` (filtering before it counted a source
        # that was in alarm at any time of the range)
        panel("stat", "Sources in alarm", [influx(SOURCES_IN_ALARM)], w=6, h=5,
              fieldConfig=zero_when_empty(thresholds([(None, "green"), (1, "red")]))),
        panel("table", "Latest annunciated alarm events", [events], w=24, h=10),
    ], description="Each hazard source with its GB 18218 level and status colour.")


def gas_detection() -> Json:
    det = '"point" =~ /^$detector$/'
    return dashboard("hazgw-gas", "Gas detection", [
        panel("timeseries", "$detector", [influx(_series(det, by='"point"')),
                                          influx(_limits(det, ("L1", "L2")), ref="B")],
              w=12, h=8, repeat="detector", repeatDirection="h", maxPerRow=2),
    ], variables=[variable("detector", 'SHOW TAG VALUES FROM "reading" WITH KEY = "point" '
                           "WHERE \"kind\" = 'combustible_gas' OR \"kind\" = 'toxic_gas'",
                           "Detector")],
        annotations=[{"name": "Gas alarms", "datasource": INFLUX, "enable": True,
                      "iconColor": "red", "titleColumn": "level", "textColumn": "point",
                      "query": 'SELECT "value", "point", "level" FROM "alarm_event" WHERE '
                               "(\"kind\" = 'combustible_gas' OR \"kind\" = 'toxic_gas') AND "
                               '"annunciated" = true AND $timeFilter'}],
        description="Concentration per detector against its GB/T 50493 L1 / L2 lines.")


def _measure(kind: str, title: str, unit: str, var: str) -> Json:
    where = f"\"equipment\" =~ /^${var}$/ AND \"kind\" = '{kind}'"
    return panel("timeseries", f"{title} — ${var}", [influx(_series(where)),
                                                     influx(_limits(where), ref="B")],
                 w=8, h=8, unit=unit, repeat=var, repeatDirection="v")


def tank_farm() -> Json:
    forecast = influx('SELECT last("forecast_s") AS "seconds to limit", last("level") AS '
                      '"toward", last("value") AS "value", last("limit") AS "limit" FROM '
                      "\"alarm_event\" WHERE \"alarm_type\" = 'predictive' AND $timeFilter "
                      'GROUP BY "point"', "table")
    return dashboard("hazgw-tank-farm", "Tank farm", [
        _measure("level", "Level", "lengthm", "tank"),
        _measure("temperature", "Temperature", "celsius", "tank"),
        _measure("pressure", "Pressure", "pressurembar", "tank"),
        panel("table", "Predicted time to limit (predictive warnings, not GB/T 50493 alarms)",
              [forecast], w=24, h=6, unit="s"),
    ], variables=[variable("tank", 'SHOW TAG VALUES FROM "reading" WITH KEY = "equipment" '
                                   "WHERE \"kind\" = 'level'", "Tank")],
        description="Level, temperature and pressure of each tank with its H / HH band.")


def dust_explosion() -> Json:
    col = '"equipment" =~ /^$collector$/'
    return dashboard("hazgw-dust", "Dust explosion", [
        panel("timeseries", "Collector ΔP — $collector",
              [influx(_series(f"{col} AND \"kind\" = 'differential_pressure'")),
               influx(_limits(f"{col} AND \"kind\" = 'differential_pressure'"), ref="B")],
              w=12, unit="pressurepa"),
        panel("timeseries", "Hopper temperature — $collector",
              [influx(_series(f"{col} AND \"kind\" = 'temperature'")),
               influx(_limits(f"{col} AND \"kind\" = 'temperature'"), ref="B")],
              w=12, unit="celsius"),
        panel("timeseries", "Spark detections (per min) — $collector",
              [influx(_series(f"{col} AND \"kind\" = 'spark'", agg='max("value")'))], w=12,
              fieldConfig=thresholds([(None, "green"), (1, "red")], line=True)),
        panel("state-timeline", "Lock-valve faults",
              [influx(_series(f"{col} AND \"kind\" = 'digital'", agg='max("value")'))], w=12,
              fieldConfig={"defaults": {"mappings": mappings(
                  {"0": ("ok", "green"), "1": ("FAULT", "red")})}, "overrides": []}),
    ], variables=[variable("collector", 'SHOW TAG VALUES FROM "reading" WITH KEY = '
                                        "\"equipment\" WHERE \"kind\" = 'differential_pressure'",
                           "Collector")],
        description="Dust collectors: ΔP, hopper temperature, sparks, lock-valve faults.")


def _health(field: str) -> str:
    return (f'SELECT last("{field}") FROM "{ALARM_HEALTH.name}" WHERE $timeFilter '
            'GROUP BY time($__interval), "console" fill(previous)')


def alarm_health() -> Json:
    bad_actors = influx('SELECT count("level_code") AS "annunciations" FROM "alarm_event" '
                        f"WHERE \"annunciated\" = true AND \"event\" =~ {ANNUNCIATING_EVENTS} AND "
                        "$timeFilter "
                        'GROUP BY "point"', "table")
    return dashboard("hazgw-alarm-health", "Alarm system health", [
        panel("timeseries", "Annunciated alarms per 10 min, per console (EEMUA 191 lines)",
              [influx(_health("annunciated_10min"))], w=24,
              fieldConfig=thresholds([(None, "transparent"), *EEMUA], line=True)),
        panel("state-timeline", "Alarm flood (ISA-18.2: > 10 in 10 min, ends < 5)",
              [influx(_health("in_flood"))], w=12, h=6,
              fieldConfig={"defaults": {"mappings": mappings(
                  {"0": ("no flood", "green"), "1": ("FLOOD", "red")})}, "overrides": []}),
        panel("timeseries", "Floods and time in flood", [
            influx(_health("floods")), influx(_health("flood_ms"), ref="B")], w=12, h=6),
        panel("timeseries", "Chattering alarms (≥ 3 activations in 60 s)",
              [influx(_health("alarms_chattering"))], w=8, h=7),
        panel("timeseries", "Stale alarms (active ≥ 24 h)", [influx(_health("alarms_stale"))],
              w=8, h=7),
        panel("timeseries", "Alarms by lifecycle state", [influx(
            'SELECT last("alarms_unack") AS "unack", last("alarms_ack") AS "ack", '
            'last("alarms_rtn_unack") AS "rtn_unack", last("alarms_shelved") AS "shelved", '
            'last("alarms_out_of_service") AS "out of service" FROM "alarm_health" WHERE '
            "$timeFilter GROUP BY time($__interval) fill(previous)")], w=8, h=7),
        panel("table", "Top bad actors (annunciations in range)", [bad_actors], w=24, h=8,
              transformations=[
                  {"id": "reduce", "options": {"reducers": ["sum"], "mode": "seriesToRows"}},
                  {"id": "sortBy", "options": {"sort": [{"field": "Total", "desc": True}]}},
                  {"id": "limit", "options": {"limitField": 10}}]),
    ], description="ISA-18.2 / EEMUA 191 alarm-system KPIs per console.")


def hazard_register() -> Json:
    by_source = sql(
        "SELECT hazard_source AS \"hazard source\", level, "
        f"count(*) FILTER (WHERE {OPEN}) AS open, "
        f"count(*) FILTER (WHERE {OPEN} AND deadline_ms < {NOW_MS}) AS overdue, "
        f"count(*) FILTER (WHERE {OPEN} AND listed_ms IS NOT NULL) AS supervised, "
        "count(*) FILTER (WHERE state = 'closed') AS closed "
        "FROM register_entry GROUP BY hazard_source, level ORDER BY 1, 2")
    entries = sql(
        "SELECT id, hazard_source AS \"hazard source\", title, level, state, "
        "responsible_person AS \"responsible\", to_timestamp(deadline_ms / 1000.0) AS deadline, "
        f"deadline_ms < {NOW_MS} AS overdue, listed_ms IS NOT NULL AS supervised "
        f"FROM register_entry WHERE {OPEN} ORDER BY listed_ms IS NULL, deadline_ms NULLS LAST")
    return dashboard("hazgw-register", "Hazard register", [
        panel("stat", "Open", [sql(f"SELECT count(*) AS open FROM register_entry WHERE {OPEN}")],
              w=8, h=5),
        panel("stat", "Overdue", [sql("SELECT count(*) AS overdue FROM register_entry WHERE "
                                      f"{OPEN} AND deadline_ms < {NOW_MS}")], w=8, h=5,
              fieldConfig=thresholds([(None, "green"), (1, "red")])),
        panel("stat", "Supervised (挂牌督办)", [sql(
            "SELECT count(*) AS supervised FROM register_entry WHERE "
            f"{OPEN} AND listed_ms IS NOT NULL")], w=8, h=5,
            fieldConfig=thresholds([(None, "green"), (1, "orange")])),
        panel("table", "By hazard source and level", [by_source], w=24, h=8),
        panel("table", "Open entries (supervised first, then by deadline)", [entries], w=24,
              h=10),
        panel("timeseries", "Entries registered per day", [sql(
            "SELECT date_trunc('day', to_timestamp(created_ms / 1000.0)) AS time, "
            "count(*) AS registered FROM register_entry WHERE "
            "$__unixEpochFilter(created_ms / 1000) GROUP BY 1 ORDER BY 1", "time_series")],
              w=24, h=6),
    ], description="The hazard register's closed loop: open, overdue and supervised entries.")


def _rate(field: str, alias: str) -> str:
    return (f'SELECT non_negative_derivative(last("{field}"), 1s) AS "{alias}" FROM '
            f'"{GATEWAY_STATS.name}" WHERE $timeFilter GROUP BY time($__interval), "instance" '
            "fill(none)")


def gateway_health() -> Json:
    gauge = ('SELECT last("{f}") AS "{a}" FROM "{m}" WHERE $timeFilter '
             'GROUP BY time($__interval), "{t}" fill(none)')
    return dashboard("hazgw-gateway-health", "Gateway health", [
        panel("timeseries", "Ingest (readings/s)", [influx(_rate("readings", "readings/s"))],
              w=12, unit="ops"),
        panel("timeseries", "Write latency (moving average)", [influx(gauge.format(
            f="write_latency_ms", a="ms", m="gateway_stats", t="instance"))], w=12, unit="ms"),
        panel("timeseries", "Drops and rejects (per s)", [
            influx(_rate("spool_dropped_points", "spool dropped")),
            influx(_rate("rejected_points", "rejected"), ref="B"),
            influx(_rate("malformed_messages", "malformed"), ref="C"),
            influx(_rate("broker_dropped_messages", "broker dropped"), ref="D")], w=12),
        panel("timeseries", "Retries (per s)", [
            influx(_rate("write_retries", "write retries")),
            influx(_rate("write_throttled", "throttled"), ref="B")], w=12),
        panel("timeseries", "Spool depth", [
            influx(gauge.format(f="spool_bytes", a="gateway spool", m="gateway_stats",
                                t="instance")),
            influx(gauge.format(f="spool_bytes", a="edge spool", m="edge_stats", t="edge"),
                   ref="B")], w=12, unit="bytes"),
        panel("timeseries", "Pending points", [influx(gauge.format(
            f="pending_points", a="pending", m="gateway_stats", t="instance"))], w=12),
        panel("timeseries", "Modbus polls failed (per s, per device)", [influx(
            'SELECT non_negative_derivative(last("polls_failed"), 1s) FROM "device_stats" '
            'WHERE $timeFilter GROUP BY time($__interval), "edge", "device" fill(none)')],
              w=12),
        panel("timeseries", "Modbus poll latency", [influx(gauge.format(
            f="latency_avg_ms", a="avg", m="device_stats", t="device"))], w=12, unit="ms"),
    ], description="The gateway's and the edges' self-metrics.")


DASHBOARDS = {"plant-overview.json": plant_overview, "gas-detection.json": gas_detection,
              "tank-farm.json": tank_farm, "dust-explosion.json": dust_explosion,
              "alarm-health.json": alarm_health, "hazard-register.json": hazard_register,
              "gateway-health.json": gateway_health}


def all_dashboards() -> dict[str, Json]:
    """File name → dashboard JSON."""
    return {name: build() for name, build in DASHBOARDS.items()}
