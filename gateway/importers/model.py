"""What an importer produces: devices in this project's edge vocabulary, and notes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class ConfigImportError(ValueError):
    """A file that cannot be imported; the text names what and where."""


@dataclass
class Imported:
    """Devices (id → ``edge.config.ModbusDevice`` fields) and what a person must check."""

    source: str
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    point_devices: dict[str, str] = field(default_factory=dict)    # point → device

    def add_point(self, device: str, name: str, register: dict[str, Any]) -> str:
        """Add a register under a point id made from ``name`` (unique in the site)."""
        pid = identifier(name)
        if pid in self.point_devices:
            pid = identifier(f"{device}_{name}")
        n = 2
        base = pid
        while pid in self.point_devices:
            pid, n = f"{base}_{n}", n + 1
        self.point_devices[pid] = device
        self.devices[device].setdefault("registers", {})[pid] = register
        return pid


def identifier(name: str) -> str:
    """A valid point or device id from a free-form name."""
    out = re.sub(r"[^A-Za-z0-9_.\-]", "_", name.strip()).strip("_.-") or "x"
    if not out[0].isalnum():
        out = f"x{out}"
    return out[:64]


# (ThingsBoard byteOrder, wordOrder) and Telegraf byte orders → ours (A most significant)
ORDERS = {("BIG", "BIG"): "ABCD", ("BIG", "LITTLE"): "CDAB", ("LITTLE", "BIG"): "BADC",
          ("LITTLE", "LITTLE"): "DCBA"}
