"""A simulated Modbus device in a process of its own, so that a test can kill it by its PID
like a device that loses power: ``python -m tests.edge.device_process PORT``.

It serves the map of ``device_map()`` with fixed values and prints ``ready`` once it listens.
"""

from __future__ import annotations

import asyncio
import sys

from edge.config import ModbusDevice
from edge.sim.simulator import PlantModel, SimulatedDevice

VALUES = {"level": 6.5, "temp": 21.5, "gas": 3.0}


def device_map(port: int, prefix: str = "", **overrides: object) -> ModbusDevice:
    """The register map the process serves (and a poller reads, its point ids prefixed)."""
    return ModbusDevice.model_validate({
        "host": "127.0.0.1", "port": port,
        "registers": {f"{prefix}level": {"address": 0, "type": "float32"},
                      f"{prefix}temp": {"address": 2, "type": "int16", "scale": 0.5},
                      f"{prefix}gas": {"table": "input", "address": 0, "type": "uint16"}},
        **overrides})


class Fixed(PlantModel):
    """The same values always, so what was read can be compared exactly."""

    def value(self, pid: str, t: float | None = None) -> float:
        return VALUES[pid]


async def serve(port: int) -> None:
    sim = SimulatedDevice(device_map(port), Fixed({}))
    await sim.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
