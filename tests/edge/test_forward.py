"""Store and forward through real outages: Mosquitto is stopped for 30 s while three devices
poll at 1 Hz, and an edge agent is restarted while its spool holds data. Every reading the
edge took must reach InfluxDB 1.6.7 exactly once; spooled messages replay in order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import wire
from edge.agent import EdgeAgent
from edge.forward import StoreAndForward, spool_capacity
from edge.mqtt import MqttSettings, MqttUplink
from edge.sim.simulator import PlantModel, SimulatedDevice
from edge.spool import Spool
from gateway.app import gateway_session
from gateway.settings import InfluxSettings, Settings
from gateway.sim.ports import free_port
from gateway.site import SiteConfig, parse_site
from gateway.stream.core import Core
from tests import services
from tests.gateway.test_e2e import PERSONS
from tests.services import Server, influx_query
from tests.waiting import wait_until

DEVICES = ("d1", "d2", "d3")


def three_device_site(ports: list[int]) -> SiteConfig:
    """Three devices of three points each, polled at 1 Hz."""
    points = {}
    modbus = {}
    for dev, port in zip(DEVICES, ports, strict=True):
        points.update({
            f"{dev}_L": {"kind": "level", "unit": "m", "range_low": 0, "range_high": 12,
                         "lo": 1, "hi": 10},
            f"{dev}_P": {"kind": "pressure", "unit": "MPa", "range_low": 0, "range_high": 2.5,
                         "hi": 1.6},
            f"{dev}_G": {"kind": "combustible_gas", "unit": "%LEL", "range_low": 0,
                         "range_high": 100, "hi": 25, "hihi": 50}})
        modbus[dev] = {"host": "127.0.0.1", "port": port, "poll_interval_s": 1.0,
                       "registers": {f"{dev}_L": {"address": 0, "type": "float32"},
                                     f"{dev}_P": {"address": 2, "type": "float32"},
                                     f"{dev}_G": {"table": "input", "address": 0,
                                                  "type": "uint16", "scale": 0.1}}}
    return parse_site({
        "enterprise": {
            "code": "91320582MA1W3K4X5R", "name": "Outage Test Co.",
            "hazard_sources": {"farm": {
                "name": "farm", "unit_type": "storage", "exposed_population_500m": 10,
                "substances": [{"substance": "lpg", "quantity_t": 100}],
                "responsible_persons": PERSONS,
                "equipment": {"V1": {"kind": "tank", "points": points}}}}},
        "edges": {"edge-o": {"max_batch_readings": 100, "max_batch_delay_s": 0.2,
                             "stats_interval_s": 2, "modbus": modbus}}})


class Taking(StoreAndForward):
    """The real store-and-forward uplink, noting every reading the edge hands it."""

    def __init__(self, uplink: MqttUplink, spool: Spool, taken: list[tuple[str, int]]) -> None:
        super().__init__(uplink, spool)
        self.taken = taken

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        if topic.endswith("/readings"):
            b = wire.decode(payload)
            self.taken += zip(b.ids, b.ts_ms.tolist(), strict=True)
        await super().publish(topic, payload, readings)


class SeqWatcher:
    """A persistent QoS 1 subscriber noting (boot, seq) of reading messages as they arrive."""

    def __init__(self, broker: Server, topic: str) -> None:
        self.arrived: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="seq-watcher",
                                   clean_session=False)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self._client.on_message = self._on_message
        self._client.connect_async("127.0.0.1", broker.port)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        b = wire.decode(bytes(msg.payload))
        with self._lock:
            self.arrived.append((b.boot, b.seq))

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def watching(broker: Server, topic: str) -> Iterator[SeqWatcher]:
    w = SeqWatcher(broker, topic)
    try:
        yield w
    finally:
        w.stop()


@asynccontextmanager
async def simulated(site: SiteConfig) -> Any:
    points = {pid: p for pid, (_, _, p) in site.enterprise.points().items()}
    model = PlantModel(points)
    sims = [SimulatedDevice(dev, model) for dev in site.edges["edge-o"].modbus.values()]
    for s in sims:
        await s.start()
    try:
        yield
    finally:
        for s in sims:
            await s.stop()


def mqtt_settings(broker: Server, client_id: str) -> MqttSettings:
    return MqttSettings(port=broker.port, client_id=client_id, reconnect_max_s=2)


async def start_edge(site: SiteConfig, broker: Server, spool_dir: Path,
                     taken: list[tuple[str, int]]) -> tuple[Taking, asyncio.Task[None]]:
    agent = site.edges["edge-o"]
    fwd = Taking(MqttUplink(mqtt_settings(broker, "edge-o")),
                 Spool(spool_dir, spool_capacity(agent)), taken)
    await fwd.__aenter__()
    runner = EdgeAgent(site.enterprise.code, "edge-o", agent, fwd, uplink_stats=fwd.stats)
    return fwd, asyncio.create_task(runner.run())


async def stop_edge(fwd: Taking, task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await fwd.close()


def stored(influx: Server, db: str) -> list[tuple[str, int]]:
    """(point, ts) of every reading in InfluxDB."""
    out = []
    for s in influx_query(influx, db, 'SELECT "value", "quality" FROM reading GROUP BY point'):
        out += [(s["tags"]["point"], int(row[0])) for row in s["values"]]
    return out


async def back_and_drained(broker: Server, fwd: Taking, task: asyncio.Task[None], core: Core,
                           influx: Server, db: str, taken: list[tuple[str, int]]) -> None:
    """Restart the broker, let the spool drain while live data flows, stop the edge and wait
    until everything it took has been processed and stored."""
    await asyncio.to_thread(broker.start_again, services.MOSQUITTO_READY)
    await wait_until(lambda: len(fwd.spool) == 0, 60)
    await asyncio.sleep(2)
    await stop_edge(fwd, task)
    await wait_until(lambda: core.stats.readings >= len(taken), 30)
    await wait_until(lambda: len(stored(influx, db)) >= len(taken), 30)


def on_disk(spool: Spool) -> set[tuple[int, int]]:
    """(boot, seq) of the reading messages in the spool."""
    out = set()
    for path in spool.dir.glob("*.lp"):
        topic, _, payload = path.read_bytes().partition(b"\n")
        if topic.endswith(b"/readings"):
            b = wire.decode(payload)
            out.add((b.boot, b.seq))
    return out


def assert_exactly_once(core: Core, taken: list[tuple[str, int]], influx: Server,
                        db: str) -> None:
    assert len(set(taken)) == len(taken), "the edge took each (point, time) once"
    assert sorted(stored(influx, db)) == sorted(taken)      # every reading, and only those
    assert core.stats.readings == len(taken)                # none processed twice


def assert_replayed_in_order(arrived: list[tuple[int, int]], spooled: set[tuple[int, int]]
                             ) -> None:
    # paho may also resend a message it held when the broker went away: first arrivals count
    order = list(dict.fromkeys(m for m in arrived if m in spooled))
    assert order == sorted(spooled), "spooled messages arrive oldest first"


async def test_mosquitto_down_30_s_while_three_devices_poll(
        tmp_path: Path, influx_server: Server, influx_db: str) -> None:
    site = three_device_site([free_port() for _ in DEVICES])
    taken: list[tuple[str, int]] = []
    with services.mosquitto(tmp_path / "mq") as broker:
        settings = Settings(mqtt=mqtt_settings(broker, "core-outage"),
                            influx=InfluxSettings(url=influx_server.url, database=influx_db))
        async with simulated(site), gateway_session(site, settings) as (core, ingest):
            with watching(broker, wire.readings_topic(site.enterprise.code, "+")) as watch:
                await wait_until(ingest.subscribed.is_set)
                await asyncio.sleep(1.2)            # the broker saves the sessions (autosave 1 s)
                fwd, task = await start_edge(site, broker, tmp_path / "spool", taken)
                await wait_until(lambda: core.stats.readings >= 9, 15)
                await asyncio.to_thread(broker.stop)
                await asyncio.sleep(30)
                spooled = on_disk(fwd.spool)
                await back_and_drained(broker, fwd, task, core, influx_server, influx_db,
                                       taken)
                arrived = list(watch.arrived)
    # 30 s at 1 Hz: about 30 polls of 3 devices, spooled in messages of at most 0.2 s
    assert len(spooled) >= 25 and fwd.replayed >= len(spooled)
    assert len(taken) >= 3 * 3 * 30 and np.ptp([t for _, t in taken]) >= 30_000
    assert_exactly_once(core, taken, influx_server, influx_db)
    assert_replayed_in_order(arrived, spooled)
    # the edge's self-metrics arrived too, per device
    devices = influx_query(influx_server, influx_db,
                           'SELECT last("polls_ok") FROM device_stats GROUP BY device')
    assert {s["tags"]["device"] for s in devices} == set(DEVICES)
    assert all(s["values"][0][1] > 0 for s in devices)


async def test_edge_restarted_while_its_spool_holds_data(
        tmp_path: Path, influx_server: Server, influx_db: str) -> None:
    site = three_device_site([free_port() for _ in DEVICES])
    taken: list[tuple[str, int]] = []
    with services.mosquitto(tmp_path / "mq") as broker:
        settings = Settings(mqtt=mqtt_settings(broker, "core-restart"),
                            influx=InfluxSettings(url=influx_server.url, database=influx_db))
        async with simulated(site), gateway_session(site, settings) as (core, ingest):
            await wait_until(ingest.subscribed.is_set)
            await asyncio.sleep(1.2)
            fwd, task = await start_edge(site, broker, tmp_path / "spool", taken)
            await wait_until(lambda: core.stats.readings >= 9, 15)
            await asyncio.to_thread(broker.stop)
            await wait_until(lambda: len(fwd.spool) >= 10, 20)
            await stop_edge(fwd, task)                       # the edge restarts ...
            left = len(Spool(tmp_path / "spool", 10**9))
            fwd, task = await start_edge(site, broker, tmp_path / "spool", taken)
            await asyncio.sleep(3)                           # ... and spools on, still offline
            await back_and_drained(broker, fwd, task, core, influx_server, influx_db, taken)
    assert left >= 10                                        # the restart found them on disk
    assert_exactly_once(core, taken, influx_server, influx_db)
