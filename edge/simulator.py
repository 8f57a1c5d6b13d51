"""A plant simulator that serves point values over Modbus (TCP, RTU over TCP, RTU).

Each point gets a plausible moving value derived from its kind, range and limits (a slow wave
plus noise, well inside the normal band); ``Excursion`` scripts push a point through its
limits and back, e.g. a gas leak. Register values are computed when a request arrives, so a
poll always reads the value "now". Issue #7 deepens this into scenario files.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.devices import ModbusDevice
from edge.registers import encode_values

_HOLDING_FC = {3, 6, 16, 22, 23}


class Point(Protocol):
    """What the simulator needs to know of a point (the core's plant Point has it; the edge
    does not import the core)."""

    @property
    def kind(self) -> str: ...
    @property
    def range_low(self) -> float: ...
    @property
    def range_high(self) -> float: ...
    @property
    def lo(self) -> float | None: ...
    @property
    def hi(self) -> float | None: ...


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


def normal_value(p: Point) -> float:
    """A value in the middle of the point's normal band."""
    if p.kind in ("combustible_gas", "toxic_gas", "spark", "digital"):
        return p.range_low
    low = p.lo if p.lo is not None else p.range_low
    high = p.hi if p.hi is not None else p.range_high
    return low + 0.5 * (high - low)


@dataclass
class PlantModel:
    """Point values as a function of time since start."""

    points: Mapping[str, Point]
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


class SimulatedDevice:
    """A Modbus server answering with a PlantModel's values for one device's map: Modbus TCP,
    RTU over TCP, or RTU on ``serial_port`` (one end of a pseudo-terminal pair, in tests).
    ``also`` adds more devices (other unit ids) at the same endpoint, as behind one
    serial-to-Ethernet converter."""

    def __init__(self, dev: ModbusDevice, model: PlantModel, host: str | None = None,
                 port: int | None = None, also: tuple[ModbusDevice, ...] = (),
                 serial_port: str | None = None) -> None:
        self.dev = dev
        self.model = model
        self.host = host or dev.host or "127.0.0.1"
        self.port = port or dev.port
        self.requests = 0
        devices = [self._sim(d) for d in (dev, *also)]
        self._server: ModbusTcpServer | ModbusSerialServer
        if serial_port is not None:
            s = dev.serial
            self._server = ModbusSerialServer(
                devices, framer=FramerType.RTU, port=serial_port,
                baudrate=s.baudrate if s else 9600, bytesize=s.bytesize if s else 8,
                parity=s.parity if s else "E", stopbits=s.stopbits if s else 1)
        else:
            framer = FramerType.RTU if dev.transport != "tcp" else FramerType.SOCKET
            self._server = ModbusTcpServer(devices, framer=framer,
                                           address=(self.host, self.port))
        self._serial = serial_port is not None
        self._task: asyncio.Task[None] | None = None

    def _sim(self, dev: ModbusDevice) -> SimDevice:
        size = max(r.address + r.width for r in dev.registers.values()) + 1
        bits = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
        regs = [SimData(0, count=size, values=0, datatype=DataType.REGISTERS)]
        return SimDevice(id=dev.unit_id, simdata=(bits, bits, regs, list(regs)),
                         action=partial(SimulatedDevice._fill, self, dev, size))

    async def _fill(self, dev: ModbusDevice, size: int, function_code: int,
                    start_address: int, address: int, count: int,
                    current_registers: list[int], set_values: object) -> None:
        self.requests += 1
        table = "holding" if function_code in _HOLDING_FC else "input"
        image = [0] * size
        for pid, reg in dev.registers.items():
            if reg.table == table:
                words = encode_values(reg, self.model.value(pid))
                if reg.type == "bit":          # several bit points may share a register
                    image[reg.address] |= words[0]
                else:
                    image[reg.address:reg.address + len(words)] = words
        # current_registers is the whole block starting at start_address: refresh the
        # requested window only.
        lo = max(0, address - start_address)
        hi = min(len(current_registers), address - start_address + count,
                 size - start_address)
        current_registers[lo:hi] = image[start_address + lo:start_address + hi]

    async def start(self) -> None:
        """Start listening; returns once the port accepts connections."""
        self._task = asyncio.create_task(self._server.serve_forever(), name=f"sim-{self.port}")
        if self._serial:
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

    async def stop(self) -> None:
        """Stop the server and its task."""
        await self._server.shutdown()  # type: ignore[no-untyped-call]
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
