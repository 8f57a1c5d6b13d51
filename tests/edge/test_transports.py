"""Modbus RTU over TCP (two slaves behind one converter, one shared connection), Modbus RTU
on a serial line (a socat pseudo-terminal pair: the server on one end, the poller on the
other), and the per-device workarounds, each read from a real pymodbus server."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from edge.config import ModbusDevice, Register
from edge.poller import DevicePoller, Samples, lines_for
from edge.sim.simulator import PlantModel, SimulatedDevice
from edge.wire import Quality
from gateway.sim.ports import free_port
from tests.edge.relay import CountingRelay
from tests.services import require_binary

REGISTERS = {"level": {"address": 0, "type": "float32"},
             "press": {"address": 2, "type": "float32", "word_order": "CDAB"},
             "temp": {"address": 4, "type": "int16", "scale": 0.5},
             "gas": {"table": "input", "address": 0, "type": "uint16"}}
VALUES = {"level": 6.5, "press": 1.25, "temp": 21.5, "gas": 3.0}


def device(prefix: str = "", **fields: object) -> ModbusDevice:
    return ModbusDevice.model_validate({
        "host": "127.0.0.1", "timeout_s": 1.0,
        "registers": {prefix + k: v for k, v in REGISTERS.items()}, **fields})


class Fixed(PlantModel):
    def value(self, pid: str, t: float | None = None) -> float:
        prefix, _, name = pid.rpartition("_")
        return VALUES[name] + (100 if prefix == "b" else 0)


@asynccontextmanager
async def serving(dev: ModbusDevice, *also: ModbusDevice, serial_port: str | None = None
                  ) -> AsyncIterator[SimulatedDevice]:
    sim = SimulatedDevice(dev, Fixed({}), also=also, serial_port=serial_port)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def poll(poller: DevicePoller, times: int = 1) -> list[Samples]:
    got: list[Samples] = []
    poller._sink = got.append
    for _ in range(times):
        await poller.poll_once()
    return got


def as_dict(s: Samples) -> dict[str, float]:
    assert (s[3] == Quality.GOOD).all()
    return dict(zip(s[0], s[2].tolist(), strict=True))


async def test_two_slaves_behind_one_rtu_over_tcp_converter_share_its_connection() -> None:
    port = free_port()
    a = device("a_", transport="rtu_over_tcp", port=port, unit_id=1)
    b = device("b_", transport="rtu_over_tcp", port=port, unit_id=2)
    lines = lines_for({"a": a, "b": b})
    assert lines["a"] is lines["b"]
    pa, pb = DevicePoller("a", a, print, lines["a"]), DevicePoller("b", b, print, lines["b"])
    async with serving(a, b):
        try:
            # both at once: the shared line takes one request at a time
            got_a, got_b = await asyncio.gather(poll(pa, 3), poll(pb, 3))
        finally:
            lines["a"].close()
    assert as_dict(got_a[-1]) == {f"a_{k}": v for k, v in VALUES.items()}
    assert as_dict(got_b[-1]) == {f"b_{k}": v + 100 for k, v in VALUES.items()}
    assert lines["a"].connect_attempts == 1


def pty_pair(a: Path, b: Path) -> subprocess.Popen[bytes]:
    """socat joining two pseudo-terminals, linked at ``a`` and ``b``."""
    return subprocess.Popen([require_binary("socat"), f"pty,raw,echo=0,link={a}",
                             f"pty,raw,echo=0,link={b}"])


async def test_rtu_on_a_serial_line(tmp_path: Path) -> None:
    server_end, client_end = tmp_path / "ttyS-server", tmp_path / "ttyS-client"
    socat = pty_pair(server_end, client_end)
    try:
        for _ in range(100):
            if server_end.exists() and client_end.exists():
                break
            await asyncio.sleep(0.02)
        # Linux pseudo-terminals refuse pymodbus's second set-up of an even-parity line
        # (EINVAL), so this line runs without parity; a real RS-485 port takes "E".
        line = {"port": str(client_end), "baudrate": 19200, "parity": "N"}
        dev = device("s_", transport="rtu", host=None, serial=line, unit_id=7)
        served = dev.model_copy(update={"serial": dev.serial.model_copy(  # type: ignore[union-attr]
            update={"port": str(server_end)})})
        async with serving(served, serial_port=str(server_end)):
            poller = DevicePoller("s", dev, print)
            try:
                got = await poll(poller)
            finally:
                poller.line.close()
    finally:
        socat.terminate()
        socat.wait(5)
    assert as_dict(got[0]) == {f"s_{k}": v for k, v in VALUES.items()}


def test_transport_and_endpoint_must_agree() -> None:
    with pytest.raises(ValueError, match="transport rtu needs a serial block"):
        device(transport="rtu", host=None)
    with pytest.raises(ValueError, match="transport tcp needs a host"):
        device(host=None)
    with pytest.raises(ValueError, match="does not use a serial block"):
        device(serial={"port": "/dev/ttyUSB0"})


@pytest.mark.parametrize(("workarounds", "requests_per_poll"), [
    ({}, 2),                                         # holding 0..5 in one read, input in one
    ({"one_request_per_field": True}, 4),
    ({"max_registers_per_request": 2}, 4),           # 0-1, 2-3, 4, and the input register
])
async def test_read_planning_workarounds(workarounds: dict[str, object],
                                         requests_per_poll: int) -> None:
    dev = device(port=free_port(), workarounds=workarounds)
    async with serving(dev) as sim:
        poller = DevicePoller("w", dev, print)
        try:
            got = await poll(poller, 2)
        finally:
            poller.line.close()
    assert as_dict(got[-1]) == VALUES
    assert sim.requests == 2 * requests_per_poll


async def test_close_after_poll_and_pause_after_connect() -> None:
    port = free_port()
    relay = CountingRelay(free_port(), port)
    await relay.start()
    dev = device(port=relay.port, workarounds={"close_after_poll": True,
                                               "pause_after_connect_s": 0.3})
    try:
        async with serving(dev.model_copy(update={"port": port})):
            poller = DevicePoller("w", dev, print)
            try:
                got = await poll(poller, 3)
                await asyncio.sleep(0.1)
            finally:
                poller.line.close()
    finally:
        await relay.stop()
    assert as_dict(got[-1]) == VALUES
    assert len(relay.connections) == 3 == poller.connect_attempts
    waits = [f - c for c, f in zip(relay.connections, relay.first_request, strict=True)]
    assert min(waits) >= 0.3


async def test_an_exception_response_makes_only_its_block_bad_and_the_device_stays_online(
        caplog: pytest.LogCaptureFixture) -> None:
    """pymodbus's own server answering an address it does not have (the rogues' gallery,
    ``test_rogues``, has the raw-socket version with a count of connections)."""
    served = device(port=free_port())
    # the poller asks for a register the device does not have: exception 2 (illegal address)
    asked = served.model_copy(update={"registers": {
        **served.registers, "missing": Register(address=200, type="uint16")}})
    async with serving(served):
        poller = DevicePoller("x", asked, print)
        try:
            with caplog.at_level(logging.WARNING, logger="edge.poller"):
                got = await poll(poller, 2)
        finally:
            poller.line.close()
    for ids, _, values, quality, detail in got:
        q = dict(zip(ids, quality.tolist(), strict=True))
        assert q.pop("missing") == Quality.BAD and np.isnan(values[ids.index("missing")])
        # the exception code is the missing point's quality detail, nobody else's
        assert dict(zip(ids, detail.tolist(), strict=True)) == \
            {i: 2 if i == "missing" else 0 for i in ids}
        assert set(q.values()) == {Quality.GOOD}             # the other blocks are read
    said = [r.message for r in caplog.records]
    assert len(said) == 1 and "with exception code 2" in said[0]
    assert poller.online and poller.offline_events == 0 and poller.stats.polls_failed == 0
    assert poller.stats.exception_responses == 2
