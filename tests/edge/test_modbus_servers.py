"""Every register type in all four byte orders, read by the edge poller from two real Modbus
TCP servers: pymodbus's and modbus-tk's (a different implementation)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from edge.config import ModbusDevice, Register
from edge.poller import DevicePoller, Samples
from edge.registers import encode_values
from gateway.sim.ports import free_port

VALUES = {"int16": -1234, "uint16": 65000, "int32": -70000, "uint32": 4_000_000_000,
          "int64": -9_000_000_000_000, "float32": -0.375, "float64": 1234.5678901234}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def register_map() -> dict[str, Register]:
    """One point per (type, order), packed one after another."""
    regs: dict[str, Register] = {}
    addr = 0
    for rtype in VALUES:
        for order in ORDERS:
            reg = Register.model_validate({"address": addr, "type": rtype, "word_order": order})
            regs[f"{rtype}_{order}"] = reg
            addr += reg.width
    regs["bit_5"] = Register.model_validate({"address": addr, "type": "bit", "bit": 5})
    return regs


def image(regs: dict[str, Register]) -> list[int]:
    words = [0] * (max(r.address + r.width for r in regs.values()))
    for reg in regs.values():
        value = 1.0 if reg.type == "bit" else VALUES[reg.type]
        w = encode_values(reg, value)
        words[reg.address:reg.address + len(w)] = w
    return words


def expected(regs: dict[str, Register]) -> dict[str, float]:
    return {pid: 1.0 if r.type == "bit" else float(VALUES[r.type]) for pid, r in regs.items()}


@contextmanager
def modbus_tk_server(port: int, words: list[int], coils: list[int] | None = None,
                     discrete: list[int] | None = None) -> Iterator[None]:
    import modbus_tk.defines as cst
    from modbus_tk import modbus_tcp

    server = modbus_tcp.TcpServer(port=port, address="127.0.0.1")
    server.start()
    try:
        slave = server.add_slave(1)
        slave.add_block("hr", cst.HOLDING_REGISTERS, 0, len(words))
        slave.set_values("hr", 0, words)
        for name, kind, bits in (("co", cst.COILS, coils), ("di", cst.DISCRETE_INPUTS, discrete)):
            if bits:
                slave.add_block(name, kind, 0, len(bits))
                slave.set_values(name, 0, bits)
        for _ in range(200):            # its listener starts on a thread: wait (bounded)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.01)
        yield
    finally:
        server.stop()


async def read_all(port: int, regs: dict[str, Register]) -> dict[str, float]:
    dev = ModbusDevice(host="127.0.0.1", port=port, timeout_s=2, registers=regs)
    got: list[Samples] = []
    poller = DevicePoller("dev", dev, got.append)
    try:
        await poller.poll_once()
    finally:
        poller.line.close()
    ids, _, vals, q, _ = got[0]
    assert (q == 0).all(), "every field read with good quality"
    return dict(zip(ids, vals.tolist(), strict=True))


async def test_modbus_tk_server_every_type_and_order() -> None:
    regs = register_map()
    port = free_port()
    with modbus_tk_server(port, image(regs)):
        got = await read_all(port, regs)
    assert got == expected(regs)


async def test_coils_and_discrete_inputs_from_modbus_tk() -> None:
    coils = [0, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    discrete = [1, 0, 1]
    regs = {f"co{i}": Register.model_validate({"table": "coil", "address": i, "type": "bool"})
            for i in (1, 2, 3, 9)}
    regs.update({f"di{i}": Register.model_validate({"table": "discrete", "address": i,
                                                   "type": "bool"}) for i in range(3)})
    regs["hr"] = Register.model_validate({"address": 0, "type": "uint16"})
    port = free_port()
    with modbus_tk_server(port, [7], coils, discrete):
        got = await read_all(port, regs)
    assert got == {"co1": 1.0, "co2": 1.0, "co3": 0.0, "co9": 1.0,
                   "di0": 1.0, "di1": 0.0, "di2": 1.0, "hr": 7.0}


def test_bit_tables_take_bool_only() -> None:
    with pytest.raises(ValueError, match="coils and discrete inputs are read as type bool"):
        Register.model_validate({"table": "coil", "address": 0, "type": "uint16"})
    with pytest.raises(ValueError, match="coils and discrete inputs are read as type bool"):
        Register.model_validate({"table": "holding", "address": 0, "type": "bool"})


async def test_pymodbus_server_every_type_and_order() -> None:
    from edge.sim.simulator import PlantModel, SimulatedDevice

    regs = register_map()
    want = expected(regs)

    class Fixed(PlantModel):
        def value(self, pid: str, t: float | None = None) -> float:
            return want[pid]

    port = free_port()
    sim = SimulatedDevice(ModbusDevice(host="127.0.0.1", port=port, registers=regs),
                          Fixed({}))
    await sim.start()
    try:
        got = await read_all(port, regs)
    finally:
        await sim.stop()
    assert got == pytest.approx(want)
