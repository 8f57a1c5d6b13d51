"""The Grafana dashboards: files up to date with their code, stable uids, and every panel's
query run against real InfluxDB 1.6.7 and PostgreSQL filled by a simulated plant through the
whole stack (simulator → Modbus → edge → Mosquitto → gateway → InfluxDB), Grafana's macros
expanded: each returns data and names only measurements, tags and fields the writer wrote."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from alerting.register import Five
from edge.clock import ScaledClock
from edge.mqtt import MqttSettings
from edge.settings import EdgeSettings
from edge.sim.scenario import load_scenario
from gateway.app import run_edge, run_gateway
from gateway.dashboards.build import all_dashboards
from gateway.dashboards.grafana import render
from gateway.settings import InfluxSettings, Settings
from gateway.sim.demo import on_loopback
from gateway.sim.serve import run_simulator
from gateway.site import load_site
from gateway.store.models import Database
from gateway.store.register import Register
from tests import services
from tests.conftest import fresh_postgres
from tests.services import Server, influx_create_db, influx_query

ROOT = Path(__file__).resolve().parents[3]
FILES = ROOT / "grafana" / "dashboards"
DAY_MS = 86_400_000


def test_dashboard_files_are_up_to_date_and_uids_stable() -> None:
    built = all_dashboards()
    on_disk = {p.name for p in FILES.glob("*.json")}
    assert on_disk == set(built), "run `hazgw grafana build`"
    for name, d in built.items():
        assert (FILES / name).read_text() == render(d), f"{name} is stale: hazgw grafana build"
    uids = [d["uid"] for d in built.values()]
    assert len(set(uids)) == len(uids) == 7
    assert all(u.startswith("hazgw-") for u in uids)


def test_datasource_uids_match_the_provisioning() -> None:
    provisioned = set()
    for f in (ROOT / "grafana" / "provisioning" / "datasources").glob("*.yaml"):
        provisioned |= {d["uid"] for d in yaml.safe_load(f.read_text())["datasources"]}
    used = {t["datasource"]["uid"] for _, _, t in targets()}
    assert used == provisioned == {"hazgw-influxdb", "hazgw-postgres"}


def targets() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(dashboard, panel title, target) of every query: panels, annotations, variables."""
    for name, d in all_dashboards().items():
        for p in d["panels"]:
            for t in p["targets"]:
                yield name, p["title"], t
        for a in d["annotations"]["list"]:
            yield name, f"annotation {a['name']}", {**a, "datasource": a["datasource"]}
        for v in d["templating"]["list"]:
            yield name, f"variable {v['name']}", v


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory,
           influx_server: Server) -> Iterator[dict[str, Any]]:
    """InfluxDB filled by the control-room scenario at 50×, the register in a PostgreSQL
    database of its own. A broker of its own: Mosquitto publishes its drop counter (retained
    for 60 s) at its start and then only when it changes, so a broker that has run longer
    than a minute without a drop would never tell the gateway (it made this test flaky)."""
    db_name = "dashboards"
    influx_create_db(influx_server, db_name)
    tmp = tmp_path_factory.mktemp("dash")
    with services.mosquitto(tmp / "mq") as broker:
        yield from _filled(tmp, broker, influx_server, db_name)


def _filled(tmp: Path, mosquitto_server: Server, influx_server: Server,
            db_name: str) -> Iterator[dict[str, Any]]:
    site = on_loopback(load_site(ROOT / "config" / "demo" / "plant.yaml"))
    agent = site.edges["edge-01"].model_copy(update={"stats_interval_s": 0.5})
    site = site.model_copy(update={"edges": {"edge-01": agent}})
    scenario, base = load_scenario(ROOT / "config" / "scenarios" / "control_room.yaml")
    clock = ScaledClock(int(time.time() * 1000), scenario.speed)
    settings = Settings(
        clock=clock.spec(), mqtt=MqttSettings(port=mosquitto_server.port, client_id="dash-core"),
        influx=InfluxSettings(url=influx_server.url, database=db_name, flush_interval_s=0.1,
                              spool_dir=tmp / "influx-spool"))

    async def stack() -> None:
        stops = [asyncio.Event() for _ in range(3)]
        sim = asyncio.create_task(run_simulator(site, None, stops[0], scenario, base,
                                                clock=clock))
        core = asyncio.create_task(run_gateway(site, settings, stops[1], status_every_s=0.5))
        await asyncio.sleep(0.3)
        edge_settings = EdgeSettings(edge_spool_dir=tmp / "spool", clock=settings.clock,
                                     mqtt=settings.mqtt)
        edge = asyncio.create_task(run_edge(site, edge_settings, stops[2]))
        # bounded: the scenario's 300 simulated seconds take 6 s at 50×
        await asyncio.wait({sim}, timeout=30)
        # Mosquitto sends its $SYS counters every sys_interval, not on subscribing: wait
        # (bounded) until the gateway has written the broker's drop counter once, so the
        # panel that shows it has data however busy the machine (it once came too late)
        for _ in range(200):
            if influx_query(influx_server, db_name, 'SELECT last("broker_dropped_messages") '
                            'FROM "gateway_stats"'):
                break
            await asyncio.sleep(0.1)
        for stop, task in zip(reversed(stops), (edge, core, sim), strict=True):
            stop.set()
            await task

    asyncio.run(stack())
    with fresh_postgres() as postgres_url:
        fill_register(postgres_url)
        yield {"db": db_name, "from_ms": clock.start_ms - 60_000,
               "to_ms": clock.now_ms() + 60_000, "pg": postgres_url}


def fill_register(url: str) -> None:
    """Entries in each state the register dashboard counts: open, overdue, supervised,
    closed."""
    db = Database(url)
    reg = Register(db)
    now = int(time.time() * 1000)
    five = Five("replace the gasket", 2000.0, "Li Na", now + 7 * DAY_MS, "plan 3")
    ent = "91320582MA1W3K4X5R"
    reg.create(enterprise=ent, hazard_source="lpg_farm", title="GT101 leaks recur",
               level="general", source="alarm_recurrence", actor="gateway", five=five)
    late = reg.create(enterprise=ent, hazard_source="chlorine_store", title="AT201 drift",
                      level="general", source="integrity", actor="gateway",
                      five=Five("recalibrate", 500.0, "Sun Lei", now - DAY_MS, "plan 1"))
    reg.transition(late, "start", "sun.lei")
    major = reg.create(enterprise=ent, hazard_source="al_polishing", title="DC301 clogging",
                       level="major", source="alarm_duration", actor="gateway", five=five)
    reg.list_for_supervision(major, "regulator.wang")
    done = reg.create(enterprise=ent, hazard_source="lpg_farm", title="V101 gauge",
                      level="general", source="inspection", actor="zhang.wei", five=five)
    reg.transition(done, "start", "zhang.wei")
    reg.transition(done, "submit", "zhang.wei")
    reg.transition(done, "verify_pass", "li.na", verifier="li.na", comment="gauge replaced")
    db.close()


def expand_influx(q: str, f: dict[str, Any], variables: dict[str, list[str]]) -> str:
    q = q.replace("$timeFilter", f"time >= {f['from_ms']}ms AND time <= {f['to_ms']}ms")
    q = q.replace("${__from}", str(f["from_ms"])).replace("${__to}", str(f["to_ms"]))
    q = q.replace("$__interval", "10s")
    for name, values in variables.items():
        q = q.replace(f"${name}", "(" + "|".join(re.escape(v) for v in values) + ")")
    return q


def expand_sql(q: str, f: dict[str, Any]) -> str:
    now_s = time.time()
    return re.sub(r"\$__unixEpochFilter\(([^)]*)\)",
                  lambda m: f"{m.group(1)} BETWEEN {now_s - 86400:.0f} AND {now_s + 86400:.0f}",
                  q)


def names_used(q: str) -> tuple[set[str], set[str]]:
    """(measurements, other quoted identifiers that are not aliases) of an InfluxQL query."""
    measurements = set(re.findall(r'FROM "(\w+)"', q))
    aliases = set(re.findall(r'AS "([^"]+)"', q))
    quoted = set(re.findall(r'"([^"]+)"', q)) - measurements - aliases
    return measurements, quoted


def written_keys(server: Server, db: str, measurement: str) -> set[str]:
    """The fields and tags the database holds for a measurement."""
    keys = set()
    for q in (f'SHOW FIELD KEYS FROM "{measurement}"', f'SHOW TAG KEYS FROM "{measurement}"'):
        for series in influx_query(server, db, q):
            keys |= {row[0] for row in series["values"]}
    return keys


def test_every_panel_query_returns_data_from_what_the_writer_wrote(
        filled: dict[str, Any], influx_server: Server) -> None:
    variables: dict[str, list[str]] = {}
    for _, title, v in targets():
        if title.startswith("variable "):
            series = influx_query(influx_server, filled["db"], v["query"])
            values = [row[1] for s in series for row in s["values"]]
            assert values, f"{title}: no values"
            variables[v["name"]] = values
    problems: list[str] = []
    ran = 0
    for dash, title, t in targets():
        if title.startswith("variable "):
            continue
        where = f"{dash} / {title} / {t.get('refId', '-')}"
        if t["datasource"]["uid"] == "hazgw-postgres":
            with psycopg.connect(filled["pg"]) as conn:
                rows = conn.execute(expand_sql(t["rawSql"], filled)).fetchall()
            ran += 1
            if not rows or not any(c not in (None, 0, False) for r in rows for c in r):
                problems.append(f"{where}: no data")
            continue
        q = expand_influx(t["query"], filled, variables)
        try:
            series = influx_query(influx_server, filled["db"], q)
        except Exception as exc:   # the query's own error, named with its panel
            problems.append(f"{where}: {exc}")
            continue
        ran += 1
        if not series or not any(s.get("values") for s in series):
            problems.append(f"{where}: no data\n    {q}")
        measurements, idents = names_used(t["query"])
        known = set().union(*(written_keys(influx_server, filled["db"], m)
                              for m in measurements))
        unknown = idents - known
        if not measurements or unknown:
            problems.append(f"{where}: names not written: {sorted(unknown) or 'no FROM'}")
    assert ran >= 40
    assert not problems, "\n".join(problems)


def panel_query(dashboard: str, title: str) -> str:
    [q] = [t["query"] for d, p, t in targets() if d == f"{dashboard}.json" and p.startswith(title)]
    return str(q)


def test_sources_in_alarm_counts_each_source_whose_latest_status_is_alarm(
        filled: dict[str, Any], influx_server: Server) -> None:
    """It showed 6 for 3 sources (a sum of status 2): the panel must equal the count taken
    from the raw rows. (That it filters after ``last`` is in its query; the scenario ends
    with every source in alarm, so the data cannot tell that apart.)"""
    rows = influx_query(influx_server, filled["db"], 'SELECT "status" FROM "source_status" '
                        f"WHERE time >= {filled['from_ms']}ms GROUP BY \"source\"")
    latest = {s["tags"]["source"]: s["values"][-1][1] for s in rows}
    expected = sum(v == 2 for v in latest.values())
    q = expand_influx(panel_query("plant-overview", "Sources in alarm"), filled, {})
    series = influx_query(influx_server, filled["db"], q)
    shown = series[0]["values"][0][1] if series else 0
    # some source is in alarm at the end, so a sum of statuses (2 each) would differ
    assert shown == expected >= 1 and expected <= len(latest)


def test_top_bad_actors_count_every_annunciation_not_only_activations(
        filled: dict[str, Any], influx_server: Server) -> None:
    """A chattering L1 ↔ L2 raises without activating again: its raises count."""
    rows = influx_query(influx_server, filled["db"], 'SELECT "event", "annunciated" FROM '
                        f"\"alarm_event\" WHERE time >= {filled['from_ms']}ms GROUP BY \"point\"")
    expected = {s["tags"]["point"]: sum(1 for _, ev, ann in s["values"]
                                        if ann and ev in ("activate", "raise", "re-alarm"))
                for s in rows}
    expected = {p: n for p, n in expected.items() if n}
    assert any(ev == "raise" and ann for s in rows for _, ev, ann in s["values"])
    q = expand_influx(panel_query("alarm-health", "Top bad actors"), filled, {})
    shown = {s["tags"]["point"]: s["values"][0][1]
             for s in influx_query(influx_server, filled["db"], q)}
    assert shown == expected


def test_spark_detections_follow_the_collector_variable(
        filled: dict[str, Any], influx_server: Server) -> None:
    q = panel_query("dust-explosion", "Spark detections")
    mine = influx_query(influx_server, filled["db"],
                        expand_influx(q, filled, {"collector": ["DC301"]}))
    assert any(s.get("values") for s in mine)
    other = influx_query(influx_server, filled["db"],
                         expand_influx(q, filled, {"collector": ["DC999"]}))
    assert not other


def test_sources_in_alarm_counts_the_latest_status_not_any_in_the_range(
        influx_server: Server) -> None:
    """A source that was in alarm and is calm now is not in alarm (filtering on status = 2
    before ``last`` counted it); one in alarm counts once (a sum counted it twice)."""
    db = "sources_in_alarm"
    influx_create_db(influx_server, db)
    t0 = 1_800_000_000_000
    body = "\n".join([
        f"source_status,enterprise=E,source=calm_now status=2i {t0}",
        f"source_status,enterprise=E,source=calm_now status=0i {t0 + 1000}",
        f"source_status,enterprise=E,source=in_alarm status=0i {t0}",
        f"source_status,enterprise=E,source=in_alarm status=2i {t0 + 1000}",
        f"source_status,enterprise=E,source=calm status=0i {t0 + 1000}"])
    req = urllib.request.Request(f"{influx_server.url}/write?db={db}&precision=ms",
                                 data=body.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204
    window = {"from_ms": t0 - 60_000, "to_ms": t0 + 60_000}
    q = expand_influx(panel_query("plant-overview", "Sources in alarm"), window, {})
    [series] = influx_query(influx_server, db, q)
    assert series["values"][0][1] == 1
