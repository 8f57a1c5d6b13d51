"""``hazgw simulate``: a scenario served live at 50×, with the edge agent and the gateway on the
same scaled clock through real Mosquitto and InfluxDB; and the command line itself."""

from __future__ import annotations

import asyncio
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import modbus_tk.defines as cst
import orjson
import yaml
from modbus_tk import modbus_tcp
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.clock import ScaledClock
from edge.mqtt import MqttSettings
from edge.settings import EdgeSettings
from edge.sim.scenario import load_scenario
from gateway.app import run_edge, run_gateway
from gateway.settings import InfluxSettings, Settings
from gateway.sim.demo import on_loopback
from gateway.sim.ports import free_port
from gateway.sim.serve import run_simulator
from gateway.site import load_site, parse_site
from tests.gateway.sim.test_simkit import SITE
from tests.services import Server, influx_query

ROOT = Path(__file__).resolve().parents[3]


async def test_tamper_scenario_at_50x_reaches_influxdb_on_simulated_time(
        demo_config_path: Path, mosquitto_server: Server, influx_server: Server,
        influx_db: str, tmp_path: Path) -> None:
    site = on_loopback(load_site(demo_config_path))
    scenario, base = load_scenario(ROOT / "config" / "scenarios" / "tamper.yaml")
    clock = ScaledClock(int(time.time() * 1000), 50.0)
    settings = Settings(
        clock=clock.spec(), mqtt=MqttSettings(port=mosquitto_server.port, client_id="sim-core"),
        influx=InfluxSettings(url=influx_server.url, database=influx_db, flush_interval_s=0.1))
    stops = [asyncio.Event() for _ in range(3)]
    sim = asyncio.create_task(run_simulator(site, None, stops[0], scenario, base, clock=clock))
    core = asyncio.create_task(run_gateway(site, settings, stops[1], status_every_s=0.5))
    await asyncio.sleep(0.3)
    edge_settings = EdgeSettings(edge_spool_dir=tmp_path / "spool", clock=settings.clock,
                                 mqtt=settings.mqtt)
    edge = asyncio.create_task(run_edge(site, edge_settings, stops[2]))
    query = ("SELECT count(level_code) FROM alarm_event WHERE point = 'V101_level' "
             "AND level = 'drop_to_zero'")
    rows: list[dict[str, object]] = []
    for _ in range(150):           # bounded: ~15 s real, 750 s simulated
        await asyncio.sleep(0.1)
        rows = influx_query(influx_server, influx_db, query)
        if rows:
            break
    for stop, task in zip(reversed(stops), (edge, core, sim), strict=True):
        stop.set()
        await task
    assert rows, "no tamper alarm reached InfluxDB"
    when = influx_query(influx_server, influx_db, query.replace("count(level_code)",
                                                                "level_code"))
    t_alarm = when[0]["values"][0][0]
    # stamped on the simulated clock: 120 s of scenario after its start (2.4 s of real time),
    # to within the poll step and start-up skew of a few simulated seconds
    assert abs((t_alarm - clock.start_ms) / 1000 - 120) < 10
    readings = influx_query(influx_server, influx_db,
                            "SELECT count(value) FROM reading WHERE point = 'V101_level'")
    n = readings[0]["values"][0][1]
    # ~1 poll per simulated second: far more readings than real seconds went by
    assert n > 60


def test_command_line_serves_the_scenario_and_prints_the_shared_clock(tmp_path: Path) -> None:
    port = free_port()
    cfg = (ROOT / "config" / "demo" / "plant.yaml").read_text()
    for old in ("15020", "15021", "15022"):
        cfg = cfg.replace(f"port: {old}", f"port: {port if old == '15020' else free_port()}")
    (tmp_path / "plant.yaml").write_text(cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "simulate", str(tmp_path / "plant.yaml"),
         "--scenario", str(ROOT / "config" / "scenarios" / "tank_overfill.yaml"),
         "--speed", "10", "--seed", "9", "--host", "127.0.0.1"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "HAZGW_MQTT__PORT": "1"})
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:            # bounded by the scenario's end (90 s at 10×)
            lines.append(line)
            if "HAZGW_CLOCK=" in line:
                break
        spec = re.search(r"HAZGW_CLOCK=(\S+)", "".join(lines))
        assert spec is not None, "".join(lines)
        assert re.fullmatch(r"\d+@\d+\.\d+x10", spec.group(1))
        master = modbus_tcp.TcpMaster("127.0.0.1", port, timeout_in_sec=2.0)
        try:
            words = master.execute(1, cst.READ_HOLDING_REGISTERS, 0, 2)
        finally:
            master.close()
        level = struct.unpack(">f", struct.pack(">HH", *words))[0]
        assert 8.9 < level < 12.3       # V101_level: 9.0 m and filling, per the scenario
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode in (0, -15)


async def test_mqtt_native_sensors_are_published_in_the_shape_their_config_reads(
        mosquitto_server: Server, tmp_path: Path) -> None:
    doc = yaml.safe_load(SITE)
    doc["enterprise"]["hazard_sources"]["farm"]["equipment"]["T1"]["points"]["T_json"] = {
        "kind": "temperature", "unit": "°C", "range_low": -20, "range_high": 60, "lo": 0,
        "hi": 40}
    doc["edges"]["e1"]["mqtt_sensors"]["json"] = {
        "topic": "farm/T1/json", "fields": {"T_json": "tank.temp"}, "ts_path": "ts"}
    site = on_loopback(parse_site(doc))
    got: list[tuple[str, bytes]] = []
    arrived: list[float] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-sub")

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        got.append((m.topic, bytes(m.payload)))
        if m.topic == "farm/T1/json":
            arrived.append(time.time())
    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto_server.port)
    sub.subscribe("farm/#", qos=1)
    sub.loop_start()
    try:
        stop = asyncio.Event()
        clock = ScaledClock(int(time.time() * 1000), 10.0)
        task = asyncio.create_task(run_simulator(
            site, None, stop, mqtt=MqttSettings(port=mosquitto_server.port), clock=clock))
        for _ in range(50):                      # bounded: 5 s
            await asyncio.sleep(0.1)
            if {t for t, _ in got} == {"farm/T1/level", "farm/T1/json"} and len(got) >= 10:
                break
        stop.set()
        await task
    finally:
        sub.loop_stop()
        sub.disconnect()
    plain = [float(p) for t, p in got if t == "farm/T1/level"]
    assert plain and all(1.0 < v < 8.0 for v in plain)         # mid-band of lo 1, hi 8
    docs = [orjson.loads(p) for t, p in got if t == "farm/T1/json"]
    assert docs and all(10.0 < d["tank"]["temp"] < 30.0 for d in docs)   # mid-band of 0..40
    # stamped on the simulated clock, which runs 10× faster than the wall
    assert docs[-1]["ts"] - docs[0]["ts"] > 5000 * (arrived[-1] - arrived[0]) > 0
