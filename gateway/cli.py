"""``hazgw``: check configs, generate schemas, run the core, an edge agent, the simulator or
the all-in-one demo, print the daily regulator report, verify the audit log."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import sys
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from edge.supervise import run_until_signal
from gateway.settings import Settings
from gateway.site import ConfigError, SiteConfig, format_errors, load_site


def _config_errors(exc: ConfigError) -> int:
    """Every error of a config, by path, on stderr; the exit status of a bad config."""
    print(f"{exc.source}: {len(exc.errors)} error(s)", file=sys.stderr)
    for line in exc.errors:
        print(f"  {line}", file=sys.stderr)
    return 2


def _site(path: str) -> SiteConfig:
    try:
        return load_site(path)
    except ConfigError as exc:
        raise SystemExit(_config_errors(exc)) from None


def _settings() -> Settings:
    try:
        return Settings()
    except SettingsError as exc:
        print(f"environment settings (HAZGW_*): {exc} (not valid JSON?)", file=sys.stderr)
        raise SystemExit(2) from None
    except ValidationError as exc:
        print("environment settings (HAZGW_*): invalid", file=sys.stderr)
        for line in format_errors(exc):
            print(f"  HAZGW_{line}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a site file, or a deployment's directory of them; print every error by
    (file and) path, or a summary."""
    from gateway.site import summary, warnings

    if Path(args.path).is_dir():
        return _check_deployment(Path(args.path))
    site = _site(args.path)
    notes = warnings(site)
    print(f"{args.path}: OK" + (f", {len(notes)} warning(s)" if notes else ""))
    for line in notes:
        print(f"warning: {line}")
    print(summary(site))
    return 0


def _check_deployment(path: Path) -> int:
    from gateway.deployment import load_deployment
    from gateway.site import ConfigError, warnings

    try:
        dep = load_deployment(path)
    except ConfigError as exc:
        return _config_errors(exc)
    print(f"{path}: OK, {len(dep.sites)} enterprise(s) in "
          f"{len(dep.by_division())} division(s)")
    for code, site in sorted(dep.sites.items()):
        e = site.enterprise
        points = sum(len(src.iter_points()) for src in e.hazard_sources.values())
        print(f"  {dep.files[code].name}: {code} {e.name} (division {e.division}, industry "
              f"{e.industry}): {len(e.hazard_sources)} hazard source(s), {points} point(s)")
        for line in warnings(site):
            print(f"warning: {dep.files[code].name}: {line}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Write the JSON Schemas of the config files."""
    from gateway.site import write_schemas

    for p in write_schemas(Path(args.out)):
        print(p)
    return 0


def cmd_grafana_build(args: argparse.Namespace) -> int:
    """Write the dashboards as provisioning files."""
    from gateway.dashboards.grafana import build

    for p in build(Path(args.out)):
        print(p)
    return 0


def cmd_grafana_push(args: argparse.Namespace) -> int:
    """Upload the dashboard files to a running Grafana."""
    import os

    from gateway.dashboards.grafana import PushError, push

    token = os.environ.get("HAZGW_GRAFANA_TOKEN")
    user, password = os.environ.get("HAZGW_GRAFANA_USER"), os.environ.get(
        "HAZGW_GRAFANA_PASSWORD")
    credential: str | tuple[str, str] | None = token or (
        (user, password) if user and password else None)
    try:
        uids = push(args.url, credential, Path(args.dir))
    except PushError as exc:
        print(f"grafana push: {exc}", file=sys.stderr)
        return 2
    print(f"pushed {len(uids)} dashboards to {args.url}: {', '.join(uids)}")
    return 0


def scenario_file(name: str) -> Path:
    """A scenario by its name in ``config/scenarios`` or by its path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    return Path("config/scenarios") / f"{name}.yaml"


def cmd_demo(args: argparse.Namespace) -> int:
    """All-in-one demo on embedded defaults, with the console."""
    from edge.sim.scenario import ScenarioError, load_scenario
    from gateway.sim.demo import DemoConsole, run_demo, summary

    site = _site(args.config)
    scenario, base = None, Path(".")
    if args.scenario:
        try:
            scenario, base = load_scenario(scenario_file(args.scenario))
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            return 2
    console = None if args.no_console else DemoConsole(host=args.host, port=args.port)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            counts = asyncio.run(run_demo(site, args.duration, Path(args.output),
                                          scenario=scenario, base=base, speed=args.speed,
                                          console=console))
            print(summary(counts))
    except (RuntimeError, ScenarioError) as exc:
        print(f"hazgw demo: {exc}", file=sys.stderr)
        return 2
    return 0


def _keeping_state(settings: Settings) -> Settings:
    """A process of its own keeps its alarm state: in var/state unless set."""
    if settings.state.dir is not None:
        return settings
    return settings.model_copy(update={"state": settings.state.model_copy(
        update={"dir": Path("var/state")})})


def cmd_run(args: argparse.Namespace) -> int:
    """The gateway core: MQTT ingest → rules → InfluxDB."""
    from gateway.app import run_gateway
    from gateway.stream.compiled import compile_in_child

    settings = _keeping_state(_settings())
    path = args.config or str(settings.config)
    try:
        # validated and compiled in a child: this long-running process never holds the model
        compiled = compile_in_child(load_site, path)
    except ConfigError as exc:
        return _config_errors(exc)
    return run_until_signal(lambda stop: run_gateway(compiled, settings, stop), "gateway")


def cmd_cluster(args: argparse.Namespace) -> int:
    """One instance of a partitioned deployment: the enterprises of the partitions it owns,
    from the NATS JetStream cluster (gateway.cluster)."""
    from gateway.cluster.runtime import run_instance
    from gateway.deployment import load_deployment

    settings = _keeping_state(_settings())     # shared by the instances: it moves
    try:
        dep = load_deployment(args.directory)
    except ConfigError as exc:
        return _config_errors(exc)
    return run_until_signal(lambda stop: run_instance(dep, settings, stop), "cluster")


def cmd_relay(args: argparse.Namespace) -> int:
    """MQTT-only edges' wire messages from the broker into JetStream (edge.mqttrelay)."""
    from edge.mqttrelay import MqttRelay

    settings = _settings()

    async def relay(stop: asyncio.Event) -> None:
        await MqttRelay(settings.mqtt, settings.nats, args.enterprise).run(stop)
    return run_until_signal(relay, "relay")


def cmd_edge(args: argparse.Namespace) -> int:
    """An edge agent: Modbus polling → MQTT (a thin wrapper of ``python -m edge``, which
    reads only the edge's own settings and config section)."""
    from edge.__main__ import main as edge_main

    argv = [*(["--config", args.config] if args.config else []),
            *(["--edge-id", args.edge_id] if args.edge_id else [])]
    return edge_main(argv)


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """The MQTT sensors' last refused payloads, as the edges publish them."""
    from edge.deadletters import collect, format_doc

    settings = _settings()
    enterprise = _site(args.config or str(settings.config)).enterprise.code
    got = collect(settings.mqtt, enterprise, args.edge, args.wait)
    if not got:
        print(f"no dead letters from {args.edge or 'any edge'} of {enterprise} within "
              f"{args.wait:g} s (edges publish them with their stats while they have any; "
              f"broker {settings.mqtt.where()})", file=sys.stderr)
        return 1
    for edge, doc in sorted(got.items()):
        print("\n".join(format_doc(edge, doc)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """A site skeleton from a ThingsBoard IoT Gateway or Telegraf Modbus configuration."""
    from gateway.importers import IMPORTERS, ConfigImportError
    from gateway.importers.skeleton import render

    try:
        imported = IMPORTERS[args.format](Path(args.file))
    except ConfigImportError as exc:
        print(f"import {args.format}: {exc}", file=sys.stderr)
        return 2
    text = render(imported, args.edge)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        n = sum(len(d.get("registers", {})) for d in imported.devices.values())
        print(f"{args.out}: {len(imported.devices)} device(s), {n} point(s), "
              f"{len(imported.notes)} note(s) to check; next: hazgw check-config {args.out}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Serve the site's devices and sensors, from a scenario, at a speed."""
    from edge.sim.scenario import ScenarioError, load_scenario
    from gateway.sim.serve import run_simulator

    config = args.config_file or args.config
    site = _site(config)
    scenario, base = None, Path(".")
    if args.scenario:
        try:
            scenario, base = load_scenario(args.scenario)
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_simulator(site, args.host, scenario=scenario, base=base,
                                      speed=args.speed, seed=args.seed,
                                      mqtt=_settings().mqtt))
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def _anchors(args: argparse.Namespace, settings: Settings) -> list[tuple[int, str]] | str:
    """The anchors to check the chain against (``--anchor``, InfluxDB's), or what is wrong."""
    from gateway.influx.query import query

    out = []
    for a in args.anchor or []:
        rid, _, h = a.partition(":")
        if not (rid.isdigit() and re.fullmatch(r"[0-9a-f]{64}", h)):
            return f"--anchor {a!r}: expected ID:HASH (a record id and its 64 hex digits)"
        out.append((int(rid), h))
    if args.influx_anchors:
        try:
            series = query(settings.influx, 'SELECT "id", "hash" FROM "audit_anchor"')
        except (OSError, RuntimeError) as exc:
            return f"cannot read the anchors from InfluxDB at {settings.influx.url}: {exc}"
        if series is None:
            return "--influx-anchors needs a v1 InfluxDB target (HAZGW_INFLUX__KIND=v1)"
        out += [(int(r[1]), str(r[2])) for s in series for r in s["values"]]
    return out


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check the audit log's hash chain, its anchors and what it covers; name the first
    record that was edited or deleted."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.store.audit import verify_log
    from gateway.store.models import Database

    settings = _settings()
    anchors = _anchors(args, settings)
    if isinstance(anchors, str):
        print(anchors, file=sys.stderr)
        return 2
    url = args.db or settings.database_url
    db = Database(url, upgrade=False)
    try:
        with db.session() as s:
            n, problem = verify_log(s, settings.audit.all_keys(), anchors)
    except SQLAlchemyError as exc:
        print(f"cannot read the audit log at {db.url}: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        db.close()
    if problem is None:
        print(f"audit log intact: {n} records, {len(anchors)} anchor(s) reached")
        return 0
    print(f"audit log BROKEN after checking {n} records: {problem}")
    return 1


def cmd_replay(args: argparse.Namespace) -> int:
    """A recorded CSV through the rule engine: the alarm timeline and lead times."""
    from gateway.sim.replay import MISSING, ReplayError, replay, report_lines, write_result

    site = _site(args.config)
    columns: dict[str, str] = {}
    for m in args.column or []:
        name, sep, point = m.partition("=")
        if not sep or not name or not point:
            print(f"--column {m!r}: use NAME=POINT", file=sys.stderr)
            return 2
        columns[name] = point
    try:
        r = replay(site, Path(args.csv), time_col=args.time_column, columns=columns or None,
                   sep="\t" if args.sep == "tab" else args.sep, time_format=args.time_format,
                   missing=tuple(args.missing.split("|")) if args.missing else MISSING)
    except ReplayError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report_lines(r)))
    if args.out:
        write_result(r, Path(args.out))
        print(f"written {args.out}")
    return 0


def cmd_broker_config(args: argparse.Namespace) -> int:
    """The broker's users, passwords and ACL for a site."""
    from gateway.broker import write

    site = _site(args.config)
    out = Path(args.out)
    cs = write(site, out.resolve(), args.listener)
    print(f"written {out}/passwd, acl, mosquitto.conf and credentials.env (mode 0600: the "
          f"passwords) for {len(cs)} clients: {', '.join(c.name for c in cs)}")
    print("start Mosquitto with that mosquitto.conf; give each client its lines of "
          "credentials.env as HAZGW_MQTT__USERNAME / HAZGW_MQTT__PASSWORD")
    return 0


def cmd_token_new(args: argparse.Namespace) -> int:
    """A fresh API token and the HAZGW_API__TOKENS entry that keeps only its digest."""
    import json

    from gateway.api.tokens import digest, new_token
    from gateway.settings import TOKEN_DIGEST_PREFIX, ApiUser

    user = ApiUser(name=args.name, role=args.role)
    token = new_token()
    entry = {f"{TOKEN_DIGEST_PREFIX}{digest(token)}": user.model_dump()}
    print(f"token (give it to {user.name}; it is not stored anywhere): {token}")
    print("HAZGW_API__TOKENS entry (merge into the JSON object):")
    print(json.dumps(entry, ensure_ascii=False)[1:-1])
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The daily regulator report, as JSON or CSV on stdout."""
    import json
    from datetime import date, datetime

    from gateway.store.models import Database
    from gateway.store.report import BEIJING, day_bounds, online_points, report, report_csv

    settings = _settings()
    site = _site(args.config or str(settings.config))
    try:
        day = (date.fromisoformat(args.day) if args.day
               else datetime.now(BEIJING).date())
    except ValueError:
        print(f"--day: not a date (YYYY-MM-DD): {args.day!r}", file=sys.stderr)
        return 2
    code = site.enterprise.code
    try:
        online = online_points(settings.influx, code, *day_bounds(day))
    except (OSError, RuntimeError) as exc:
        # the report still comes, saying "unknown" for what only InfluxDB knows
        print(f"report: InfluxDB at {settings.influx.url} cannot say which points were on "
              f"line ({exc}); 'online' is left unknown", file=sys.stderr)
        online = None
    db = Database(settings.database_url)
    try:
        rep = report(db, code, len(site.enterprise.points()), day, online,
                     site.escalation.ack_within_s)
    finally:
        db.close()
    print(report_csv(rep) if args.format == "csv"
          else json.dumps(rep, ensure_ascii=False, indent=2))
    return 0


DESCRIPTION = ("hazgw: check configs, generate schemas, run the core, an edge agent, the "
               "simulator or the all-in-one demo with its console, print the daily regulator "
               "report, verify the audit log. `hazgw COMMAND --help` for each command.")


def _describe(parser: argparse.ArgumentParser) -> None:
    """Each command's --help opens with the line its parent lists it with."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                sub.description = sub.description or choice.help
                _describe(sub)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hazgw``."""
    p = argparse.ArgumentParser(prog="hazgw", description=DESCRIPTION)
    p.add_argument("--log-level", default="INFO",
                   help="DEBUG, INFO, WARNING or ERROR (default: INFO)")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check-config", help="validate a site YAML file, or a deployment's "
                       "directory of them (one enterprise a file)")
    c.add_argument("path", help="the site file (YAML or JSON), or a directory of them")
    c.set_defaults(func=cmd_check_config)
    s = sub.add_parser("schema", help="write JSON Schemas of the config files")
    s.add_argument("--out", default="config/schema", help="directory (default: config/schema)")
    s.set_defaults(func=cmd_schema)
    g = sub.add_parser("grafana", help="the control room's dashboards")
    gsub = g.add_subparsers(dest="grafana_cmd", required=True)
    gb = gsub.add_parser("build", help="write the dashboards as provisioning files")
    gb.add_argument("--out", default="grafana/dashboards",
                    help="directory (default: grafana/dashboards)")
    gb.set_defaults(func=cmd_grafana_build)
    gp = gsub.add_parser("push", help="upload the dashboards to a running Grafana (token in "
                         "HAZGW_GRAFANA_TOKEN, or HAZGW_GRAFANA_USER and _PASSWORD)")
    gp.add_argument("--url", default="http://127.0.0.1:3000", help="Grafana's address")
    gp.add_argument("--dir", default="grafana/dashboards", help="the dashboard files")
    gp.set_defaults(func=cmd_grafana_push)
    d = sub.add_parser("demo", help="simulator + edge + core + console in one process")
    d.add_argument("--config", default="config/demo/plant.yaml", help="site file")
    d.add_argument("--duration", type=float, default=None,
                   help="seconds; default: until ^C (or the scenario's end)")
    d.add_argument("--output", default="var/demo/readings.lp",
                   help="line-protocol file of readings and alarm events")
    d.add_argument("--scenario", default=None,
                   help="a scenario of config/scenarios (e.g. control_room) or a file; "
                        "default: the built-in LPG leak script")
    d.add_argument("--speed", type=float, default=None,
                   help="simulated seconds per second (default: the scenario's own)")
    d.add_argument("--host", default="127.0.0.1", help="console address")
    d.add_argument("--port", type=int, default=8080, help="console port")
    d.add_argument("--no-console", action="store_true", help="terminal only")
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("run", help="gateway core (settings from HAZGW_* environment)")
    r.add_argument("--config", default=None, help="site file (default: HAZGW_CONFIG)")
    r.set_defaults(func=cmd_run)
    cl = sub.add_parser("cluster", help="one instance of a partitioned deployment (NATS "
                        "JetStream, PostgreSQL leases; settings from HAZGW_* environment)")
    cl.add_argument("directory", help="the deployment: a directory of site files")
    cl.set_defaults(func=cmd_cluster)
    rl = sub.add_parser("relay", help="MQTT-only edges' messages from the broker into NATS "
                        "JetStream, acknowledged once stored (HAZGW_MQTT__*, HAZGW_NATS__*)")
    rl.add_argument("--enterprise", action="append", default=None,
                    help="only this enterprise's topics (repeatable; default: every one)")
    rl.set_defaults(func=cmd_relay)
    e = sub.add_parser("edge", help="edge agent (settings from HAZGW_* environment)")
    e.add_argument("--config", default=None, help="site file (default: HAZGW_CONFIG)")
    e.add_argument("--edge-id", default=None, help="which edge (default: HAZGW_EDGE_ID)")
    e.set_defaults(func=cmd_edge)
    dl = sub.add_parser("dead-letters", help="the MQTT sensors' last refused payloads, "
                        "per edge (settings from HAZGW_* environment)")
    dl.add_argument("--config", default=None, help="site file (default: HAZGW_CONFIG)")
    dl.add_argument("--edge", default=None, help="one edge (default: every edge heard)")
    dl.add_argument("--wait", type=float, default=15.0,
                    help="seconds to listen (edges publish with their stats, every 10 s)")
    dl.set_defaults(func=cmd_dead_letters)
    im = sub.add_parser("import", help="a site YAML skeleton from a ThingsBoard IoT Gateway "
                        "Modbus connector (JSON) or a Telegraf inputs.modbus (TOML) config")
    im.add_argument("format", choices=("thingsboard", "telegraf"), help="whose config it is")
    im.add_argument("file", help="the connector JSON or the Telegraf TOML")
    im.add_argument("--out", default="-", help="file to write (default: standard output)")
    im.add_argument("--edge", default="edge-01", help="the edge id of the imported devices")
    im.set_defaults(func=cmd_import)
    m = sub.add_parser("simulate", help="serve the site's devices and sensors from a scenario")
    m.add_argument("config_file", nargs="?", metavar="CONFIG", help="site config (YAML)")
    m.add_argument("--config", default="config/demo/plant.yaml", help=argparse.SUPPRESS)
    m.add_argument("--scenario", default=None, help="scenario file (YAML); default: steady "
                   "values with noise, forever")
    m.add_argument("--speed", type=float, default=None,
                   help="simulated seconds per real second, 1–1000 (default: the scenario's)")
    m.add_argument("--seed", type=int, default=None, help="noise seed (default: the scenario's)")
    m.add_argument("--host", default=None, help="bind address (default: each device's host)")
    m.set_defaults(func=cmd_simulate)
    bc = sub.add_parser("broker-config", help="Mosquitto users, passwords and ACL for a site "
                                              "(no anonymous clients)")
    bc.add_argument("config", help="the site YAML file")
    bc.add_argument("--out", default="var/broker", help="where to write the files")
    bc.add_argument("--listener", default="1883", help="Mosquitto's listener line "
                                                       "(port, or port and address)")
    bc.set_defaults(func=cmd_broker_config)
    tk = sub.add_parser("token", help="API tokens")
    tsub = tk.add_subparsers(dest="token_cmd", required=True)
    tn = tsub.add_parser("new", help="a fresh token (256 bits) and its digest line for "
                                     "HAZGW_API__TOKENS")
    tn.add_argument("role", choices=["operator", "safety_manager", "regulator", "admin"],
                    help="what the token may do (the role table in the README)")
    tn.add_argument("name", help="the person, as the audit log will name them")
    tn.set_defaults(func=cmd_token_new)
    rl = sub.add_parser("replay", help="a recorded CSV through the rule engine: the alarm "
                                       "timeline and warning lead times")
    rl.add_argument("csv", help="the recording: a time column and value columns")
    rl.add_argument("--config", default="config/demo/plant.yaml",
                    help="the site whose rules are replayed (default: the demo plant)")
    rl.add_argument("--time-column", help="the time column (default: the first)")
    rl.add_argument("--column", action="append", metavar="NAME=POINT",
                    help="map a column to a point (repeatable; default: columns named like "
                         "points)")
    rl.add_argument("--sep", default=",", help="the separator (',', ';', 'tab', …)")
    rl.add_argument("--time-format", default="auto",
                    help="auto (Unix s/ms/us/ns by magnitude, else ISO 8601), s, ms, us, ns, "
                         "iso, or a strptime format such as '%%Y/%%m/%%d %%H:%%M'; naive "
                         "times are Beijing time")
    rl.add_argument("--missing", help="missing-value markers separated by '|' (default: "
                                      "empty, NA, N/A, NaN, null, -)")
    rl.add_argument("--out", help="write the events with lead times (.csv, or .json)")
    rl.set_defaults(func=cmd_replay)
    rp = sub.add_parser("report", help="daily regulator report (JSON or CSV)")
    rp.add_argument("--config", default=None, help="site file (default: HAZGW_CONFIG)")
    rp.add_argument("--day", default=None, help="YYYY-MM-DD, Beijing time (default: today)")
    rp.add_argument("--format", choices=("json", "csv"), default="json",
                    help="json (default) or csv")
    rp.set_defaults(func=cmd_report)
    a = sub.add_parser("audit", help="the audit log")
    asub = a.add_subparsers(dest="audit_cmd", required=True)
    v = asub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad record")
    v.add_argument("--db", default=None, help="database URL (default: HAZGW_DATABASE_URL)")
    v.add_argument("--anchor", action="append", metavar="ID:HASH",
                   help="a head the chain must still hold, e.g. from a daily report "
                        "(repeatable)")
    v.add_argument("--influx-anchors", action="store_true",
                   help="check every head the gateway anchored in InfluxDB (HAZGW_INFLUX__*)")
    v.set_defaults(func=cmd_audit_verify)
    _describe(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hazgw`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pymodbus logs every server start/stop at INFO; its warnings still show.
    logging.getLogger("pymodbus").setLevel(max(logging.WARNING, logging.root.level))
    # alembic says each plugin it sets up at INFO; its warnings still show
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.root.level))
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
