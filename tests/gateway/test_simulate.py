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
from modbus_tk import modbus_tcp

from edge.clock import ScaledClock
from edge.mqtt import MqttSettings
from edge.scenario import load_scenario
from gateway.config import InfluxSettings, Settings, load_site
from gateway.demo import on_loopback
from gateway.service import run_edge, run_gateway
from gateway.simulate import run_simulator
from tests.services import Server, free_port, influx_query

ROOT = Path(__file__).resolve().parents[2]


async def test_tamper_scenario_at_50x_reaches_influxdb_on_simulated_time(
        demo_config_path: Path, mosquitto_server: Server, influx_server: Server,
        influx_db: str, tmp_path: Path) -> None:
    site = on_loopback(load_site(demo_config_path))
    scenario, base = load_scenario(ROOT / "config" / "scenarios" / "tamper.yaml")
    clock = ScaledClock(int(time.time() * 1000), 50.0)
    settings = Settings(
        clock=clock.spec(), edge_spool_dir=tmp_path / "spool",
        mqtt=MqttSettings(port=mosquitto_server.port, client_id="sim-core"),
        influx=InfluxSettings(url=influx_server.url, database=influx_db, flush_interval_s=0.1))
    stops = [asyncio.Event() for _ in range(3)]
    sim = asyncio.create_task(run_simulator(site, None, stops[0], scenario, base, clock=clock))
    core = asyncio.create_task(run_gateway(site, settings, stops[1], status_every_s=0.5))
    await asyncio.sleep(0.3)
    edge = asyncio.create_task(run_edge(site, "edge-01", settings, stops[2]))
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
    assert proc.returncode in (0, -15)
