"""The simulator's Modbus server, read by a Modbus master that is not pymodbus (modbus-tk):
the scenario's values in every table, dropouts and device faults as a real device shows them."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import modbus_tk.defines as cst
import pytest
from modbus_tk import modbus_tcp
from modbus_tk.exceptions import ModbusError

from edge.clock import SteppedClock
from edge.config import ModbusDevice
from edge.sim.scenario import SimPlant, parse_scenario
from edge.sim.simulator import ScenarioSource, SimulatedDevice
from gateway.sim.ports import free_port

POINTS: dict[str, tuple[str, float, float]] = {
    "P_float": ("pressure", 0, 2.5),
    "T_scaled": ("temperature", -20, 60),
    "G_input": ("combustible_gas", 0, 100),
    "L_loop": ("level", 0, 10),
    "Valve": ("digital", 0, 1),
    "Spark": ("digital", 0, 1),
}
REGISTERS = {
    "P_float": {"address": 0, "type": "float32", "word_order": "CDAB"},
    "T_scaled": {"address": 2, "type": "int16", "scale": 0.1},
    "G_input": {"table": "input", "address": 5, "type": "uint16", "scale": 0.1},
    "L_loop": {"table": "input", "address": 6, "type": "uint16",
               "current_loop": {"raw_at_4ma": 4000, "raw_at_20ma": 20000, "eng_low": 0,
                                "eng_high": 10}},
    "Valve": {"table": "coil", "address": 3, "type": "bool"},
    "Spark": {"table": "discrete", "address": 17, "type": "bool"},
}


class P:
    def __init__(self, kind: str, range_low: float, range_high: float) -> None:
        self.kind, self.range_low, self.range_high = kind, range_low, range_high
        self.lo = self.hi = None


@asynccontextmanager
async def served(events: list[dict[str, Any]], points: dict[str, dict[str, Any]] | None = None,
                 ) -> AsyncIterator[tuple[SimulatedDevice, SteppedClock, modbus_tcp.TcpMaster]]:
    port = free_port()
    dev = ModbusDevice.model_validate({"host": "127.0.0.1", "port": port,
                                       "registers": REGISTERS})
    scenario = parse_scenario({"duration_s": 600, "points": points or {
        "P_float": {"baseline": 1.25, "noise": 0}, "T_scaled": {"baseline": 21.5, "noise": 0},
        "G_input": {"baseline": 12.3, "noise": 0}, "L_loop": {"baseline": 7.5, "noise": 0}},
        "events": events})
    plant = SimPlant(scenario, {k: P(*v) for k, v in POINTS.items()}, {"plc": dev})
    clock = SteppedClock(scenario.start_ms)
    sim = SimulatedDevice(dev, ScenarioSource(plant, clock), device_id="plc")
    await sim.start()
    master = modbus_tcp.TcpMaster("127.0.0.1", port, timeout_in_sec=2.0)
    try:
        yield sim, clock, master
    finally:
        master.close()
        await sim.stop()


def read(master: modbus_tcp.TcpMaster, fc: int, address: int, count: int) -> tuple[int, ...]:
    result: tuple[int, ...] = master.execute(1, fc, address, count)
    return result


async def test_modbus_tk_master_reads_the_scenario_values_in_every_table() -> None:
    events = [{"at_s": 0, "point": "Valve", "do": "step", "to": 1},
              {"at_s": 0, "point": "Spark", "do": "step", "to": 1}]
    async with served(events) as (_, _, m):
        hold = await asyncio.to_thread(read, m, cst.READ_HOLDING_REGISTERS, 0, 3)
        # CDAB: the low word first
        assert struct.unpack(">f", struct.pack(">HH", hold[1], hold[0]))[0] == 1.25
        assert hold[2] == 215
        inp = await asyncio.to_thread(read, m, cst.READ_INPUT_REGISTERS, 5, 2)
        assert inp[0] == 123
        assert inp[1] == 4000 + 0.75 * 16000          # 7.5 of 0..10 on 4–20 mA counts
        coils = await asyncio.to_thread(read, m, cst.READ_COILS, 0, 8)
        assert list(coils) == [0, 0, 0, 1, 0, 0, 0, 0]
        disc = await asyncio.to_thread(read, m, cst.READ_DISCRETE_INPUTS, 16, 3)
        assert list(disc) == [0, 1, 0]


async def test_values_follow_the_simulated_clock() -> None:
    events = [{"at_s": 100, "point": "T_scaled", "do": "step", "to": -5.0}]
    async with served(events) as (_, clock, m):
        assert (await asyncio.to_thread(read, m, cst.READ_HOLDING_REGISTERS, 2, 1))[0] == 215
        clock.advance(100_000)
        raw = (await asyncio.to_thread(read, m, cst.READ_HOLDING_REGISTERS, 2, 1))[0]
        assert raw == 65536 - 50                       # int16 −5.0 °C × 10


async def test_a_dropout_answers_gateway_target_failed_to_respond() -> None:
    async with served([{"at_s": 0, "point": "G_input", "do": "dropout"}]) as (_, _, m):
        with pytest.raises(ModbusError) as err:
            await asyncio.to_thread(read, m, cst.READ_INPUT_REGISTERS, 5, 1)
        assert err.value.get_exception_code() == 0x0B
        # the rest of the device still answers
        assert (await asyncio.to_thread(read, m, cst.READ_HOLDING_REGISTERS, 2, 1))[0] == 215


async def test_device_faults_exception_and_offline() -> None:
    events = [{"at_s": 10, "device": "plc", "do": "exception", "code": 6, "for_s": 10},
              {"at_s": 30, "device": "plc", "do": "offline", "for_s": 10}]
    async with served(events) as (sim, clock, m):
        clock.advance(10_000)
        with pytest.raises(ModbusError) as err:
            await asyncio.to_thread(read, m, cst.READ_HOLDING_REGISTERS, 2, 1)
        assert err.value.get_exception_code() == 6
        clock.advance(20_000)
        await sim.sync()
        m.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", sim.port)
        clock.advance(10_000)
        await sim.sync()
        assert (await asyncio.to_thread(read, m, cst.READ_HOLDING_REGISTERS, 2, 1))[0] == 215


async def test_a_timeout_fault_never_answers_and_the_poller_marks_the_points_bad() -> None:
    from edge.poller import DevicePoller, Samples

    got: list[Samples] = []
    async with served([{"at_s": 0, "device": "plc", "do": "timeout", "for_s": 60}]) as (
            sim, clock, _):
        dev = sim.dev.model_copy(update={"timeout_s": 0.3, "retries": 0,
                                         "offline_after_failures": 1})
        poller = DevicePoller("plc", dev, got.append, clock=clock)
        await poller.poll_once()
        assert poller.online is False and poller.stats.polls_failed == 1
        clock.advance(60_000)
        poller._next_try_ms = 0         # skip the backoff wait: the fault is over
        await poller.poll_once()
        assert poller.online is True
        poller.line.close()
    _, _, values, quality, _ = got[0]
    # no answer: stale quality (the device off line alarm), no value
    assert set(quality.tolist()) == {3} and all(v != v for v in values)
    assert set(got[1][3].tolist()) == {0}
