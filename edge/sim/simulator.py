"""A plant simulator that serves point values over Modbus (TCP, RTU over TCP, RTU).

``SimulatedDevice`` answers a device's register map (holding and input registers, coils,
discrete inputs) with the values of a ``ValueSource`` computed when each request arrives, so
a poll always reads "now". Two sources: ``PlantModel``, a plausible moving value per point
with ``Excursion`` scripts (the demo), and ``ScenarioSource``, a scenario file's signal models
and faults on a (possibly accelerated) clock (``edge.sim.scenario``). A point with no value
(dropout) answers exception 0x0B, as a gateway whose target does not respond; device faults
refuse connections, answer an exception code, or never answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import orjson
from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.clock import Clock
from edge.config import ModbusDevice, MqttSensor
from edge.registers import encode_values
from edge.sim.scenario import DeviceFault, SimPlant, SimPoint, normal_value

_TABLE = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding",
          16: "holding", 22: "holding", 23: "holding", 4: "input"}
_BITS = ("coil", "discrete")


class ValueSource(Protocol):
    """Point values now (a ScenarioSource also knows each device's fault)."""

    def value(self, pid: str, t: float | None = None) -> float: ...


@dataclass(frozen=True)
class Excursion:
    """Ramp a point from its normal value to ``peak`` and back (times in s from start)."""

    point: str
    start_s: float
    rise_s: float
    peak: float
    hold_s: float
    fall_s: float

    def weight(self, t: float) -> float:
        """0 outside the excursion, 1 at its peak, linear ramps in between."""
        dt = t - self.start_s
        if dt <= 0:
            return 0.0
        if dt < self.rise_s:
            return dt / self.rise_s
        dt -= self.rise_s
        if dt < self.hold_s:
            return 1.0
        dt -= self.hold_s
        return max(0.0, 1.0 - dt / self.fall_s) if self.fall_s > 0 else 0.0


@dataclass
class PlantModel:
    """Point values as a function of time since start."""

    points: Mapping[str, SimPoint]
    excursions: list[Excursion] = field(default_factory=list)
    seed: int = 7
    t0: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        rnd = random.Random(self.seed)
        self._phase = {pid: rnd.uniform(0, 2 * math.pi) for pid in self.points}
        self._rnd = rnd

    def value(self, pid: str, t: float | None = None) -> float:
        """The simulated value of one point at ``t`` seconds (now by default)."""
        p = self.points[pid]
        t = time.monotonic() - self.t0 if t is None else t
        base = normal_value(p)
        span = p.range_high - p.range_low
        if p.kind in ("combustible_gas", "toxic_gas"):
            v = base + abs(0.005 * span * math.sin(t / 7 + self._phase[pid]))
        elif p.kind in ("spark", "digital"):
            v = base
        else:
            v = base + 0.02 * span * math.sin(t / 60 + self._phase[pid]) \
                + self._rnd.gauss(0, 0.002 * span)
        for ex in self.excursions:
            if ex.point == pid:
                w = ex.weight(t)
                v = v + w * (ex.peak - v)
        return min(max(v, p.range_low), p.range_high)


class ScenarioSource:
    """A scenario's plant on a clock: values and device faults at the clock's "now"."""

    def __init__(self, plant: SimPlant, clock: Clock) -> None:
        self.plant = plant
        self.clock = clock

    def t_s(self) -> float:
        """Simulated seconds since the scenario started."""
        return (self.clock.now_ms() - self.plant.start_ms) / 1000

    def value(self, pid: str, t: float | None = None) -> float:
        """The point's value at ``t`` (now by default); NaN: it reports nothing."""
        return self.plant.value(pid, self.t_s() if t is None else t)

    def fault(self, device_id: str) -> DeviceFault | None:
        """The device's fault now."""
        return self.plant.fault(device_id, self.t_s())

    def sample_time(self, pid: str) -> float | None:
        """When a replayed point's current sample was recorded (None: not replayed)."""
        return self.plant.sample_time(pid, self.t_s())


class SimulatedDevice:
    """A Modbus server answering with a ValueSource's values for one device's map: Modbus TCP,
    RTU over TCP, or RTU on ``serial_port`` (one end of a pseudo-terminal pair, in tests).
    ``also`` adds more devices (other unit ids) at the same endpoint, as behind one
    serial-to-Ethernet converter. With a ``ScenarioSource`` and ``device_id``, the device's
    scenario faults apply: call ``sync`` (the test kit does, each step) or ``watch`` to take
    the device off line and back."""

    def __init__(self, dev: ModbusDevice, model: ValueSource, host: str | None = None,
                 port: int | None = None, also: tuple[ModbusDevice, ...] = (),
                 serial_port: str | None = None, device_id: str | None = None) -> None:
        self.dev = dev
        self.model = model
        self.device_id = device_id
        self.host = host or dev.host or "127.0.0.1"
        self.port = port or dev.port
        self.requests = 0
        self._devices = (dev, *also)
        self._serial_port = serial_port
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self.offline = False
        self._stopping = False

    def _make_server(self) -> ModbusTcpServer | ModbusSerialServer:
        devices = [self._sim(d) for d in self._devices]
        dev, serial_port = self.dev, self._serial_port
        if serial_port is not None:
            s = dev.serial
            return ModbusSerialServer(
                devices, framer=FramerType.RTU, port=serial_port,
                baudrate=s.baudrate if s else 9600, bytesize=s.bytesize if s else 8,
                parity=s.parity if s else "E", stopbits=s.stopbits if s else 1)
        framer = FramerType.RTU if dev.transport != "tcp" else FramerType.SOCKET
        return ModbusTcpServer(devices, framer=framer, address=(self.host, self.port))

    def _sim(self, dev: ModbusDevice) -> SimDevice:
        size = max(r.address + r.width for r in dev.registers.values()) + 1
        # bits are kept 16 to a register, bit address a in register a // 16
        bits = [SimData(0, count=size, values=False, datatype=DataType.BITS)]
        regs = [SimData(0, count=size, values=0, datatype=DataType.REGISTERS)]
        return SimDevice(id=dev.unit_id, simdata=(bits, list(bits), regs, list(regs)),
                         use_bit_addressing=True,
                         action=partial(SimulatedDevice._fill, self, dev, size))

    def _fault(self) -> DeviceFault | None:
        if isinstance(self.model, ScenarioSource) and self.device_id:
            return self.model.fault(self.device_id)
        return None

    async def _fill(self, dev: ModbusDevice, size: int, function_code: int,
                    start_address: int, address: int, count: int,
                    current_registers: list[int], set_values: object) -> ExcCodes | None:
        self.requests += 1
        fault = self._fault()
        if fault is not None and fault.kind == "timeout":
            # no answer while the fault lasts (the client times out); a late one after
            while not self._stopping and (f := self._fault()) is not None \
                    and f.kind == "timeout":
                await asyncio.sleep(0.05)
            return ExcCodes.GATEWAY_NO_RESPONSE
        if fault is not None and fault.kind == "exception":
            return ExcCodes(fault.code)
        table = _TABLE.get(function_code, "holding")
        bits = table in _BITS
        # the addresses asked for, in the table's own units (bits or registers)
        image = [0] * (len(current_registers) * 16 if bits else size)
        for pid, reg in dev.registers.items():
            if reg.table != table:
                continue
            value = self.model.value(pid)
            if math.isnan(value):
                if address <= reg.address < address + count:
                    return ExcCodes.GATEWAY_NO_RESPONSE
                continue
            words = encode_values(reg, value)
            if bits:
                image[reg.address] = words[0]
            elif reg.type == "bit":          # several bit points may share a register
                image[reg.address] |= words[0]
            else:
                image[reg.address:reg.address + len(words)] = words
        if bits:
            # current_registers packs the whole bit block: rewrite it from the bit image
            for r in range(len(current_registers)):
                current_registers[r] = sum(1 << b for b in range(16) if image[16 * r + b])
            return None
        # current_registers is the whole block starting at start_address: refresh the
        # requested window only.
        lo = max(0, address - start_address)
        hi = min(len(current_registers), address - start_address + count,
                 size - start_address)
        current_registers[lo:hi] = image[start_address + lo:start_address + hi]
        return None

    async def start(self) -> None:
        """Start listening; returns once the port accepts connections."""
        self.offline = False
        self._server = self._make_server()
        self._task = asyncio.create_task(self._server.serve_forever(), name=f"sim-{self.port}")
        if self._serial_port is not None:
            await asyncio.sleep(0.1)   # nothing to connect to: give the port a moment to open
            return
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection(self.host, self.port)
                w.close()
                await w.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.01)
        raise RuntimeError(f"simulator did not start on {self.host}:{self.port}")

    async def _close(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._server = self._task = None

    async def sync(self) -> None:
        """Go off line or back on line as the scenario's device faults say, now."""
        fault = self._fault()
        down = fault is not None and fault.kind == "offline"
        if down and not self.offline:
            await self._close()
            self.offline = True
        elif not down and self.offline:
            await self.start()

    def watch(self, every_s: float = 0.05) -> None:
        """Apply device faults in the background (free-running clocks)."""
        async def loop() -> None:
            while True:
                await self.sync()
                await asyncio.sleep(every_s)
        self._watch = asyncio.create_task(loop(), name=f"sim-watch-{self.port}")

    async def stop(self) -> None:
        """Stop the server and its tasks."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._close()


def _put(doc: dict[str, Any], path: str, value: float | int) -> None:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    doc[last] = value


def sensor_message(sensor: MqttSensor, source: ValueSource, now_ms: int,
                   sent: dict[str, float] | None = None) -> tuple[str, bytes] | None:
    """The message a simulated MQTT-native sensor publishes now, in the shape its config
    reads; None when it publishes nothing (a dropout) or its topic is a filter, which names
    no topic to publish on. A replayed point is published once per recorded sample: ``sent``
    remembers which (the sensor is event-driven; a Modbus register just holds its value)."""
    if "+" in sensor.topic or "#" in sensor.topic:
        return None
    if sent is not None and isinstance(source, ScenarioSource):
        for pid in sensor.points():
            taken = source.sample_time(pid)
            if taken is not None:
                if sent.get(pid) == taken:
                    return None
                sent[pid] = taken
    if sensor.point is not None and sensor.value_path is None:
        v = source.value(sensor.point)
        return None if math.isnan(v) else (sensor.topic, repr(v).encode())
    paths = ({sensor.point: sensor.value_path} if sensor.point is not None
             and sensor.value_path is not None else sensor.fields)
    doc: dict[str, Any] = {}
    for pid, path in paths.items():
        v = source.value(pid)
        if math.isnan(v):
            return None
        _put(doc, path, v)
    if sensor.ts_path:
        _put(doc, sensor.ts_path, now_ms)
    return sensor.topic, orjson.dumps(doc)
