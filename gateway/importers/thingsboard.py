"""ThingsBoard IoT Gateway's Modbus connector (``modbus.json``: ``master.slaves[]`` with
``timeseries`` and ``attributes`` keys). Each key becomes a point on its slave's device;
``attributeUpdates`` and ``rpc`` (writes) have no counterpart and are noted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.importers.model import ORDERS, ConfigImportError, Imported, identifier

TYPES = {"16int": "int16", "16uint": "uint16", "32int": "int32", "32uint": "uint32",
         "32float": "float32", "64int": "int64", "64float": "float64"}
TABLES = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


def read(path: Path) -> Imported:
    """The devices of a ThingsBoard Modbus connector file."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigImportError(f"{path}: not a readable JSON file: {exc}") from None
    slaves = (doc.get("master") or {}).get("slaves") if isinstance(doc, dict) else None
    if not isinstance(slaves, list) or not slaves:
        raise ConfigImportError(f"{path}: no master.slaves list (a ThingsBoard Modbus connector "
                           "config has one)")
    out = Imported(f"ThingsBoard IoT Gateway Modbus connector {path.name}")
    for i, slave in enumerate(slaves):
        try:
            _slave(out, slave, f"master.slaves[{i}]")
        except (TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
            raise ConfigImportError(f"{path}: master.slaves[{i}]: a value of the wrong kind "
                                    f"({type(exc).__name__}: {exc})") from None
    return out


def _slave(out: Imported, s: dict[str, Any], where: str) -> None:
    name = identifier(str(s.get("deviceName") or f"slave{len(out.devices) + 1}"))
    kind, method = str(s.get("type", "tcp")).lower(), str(s.get("method", "socket")).lower()
    dev: dict[str, Any] = {"unit_id": int(s.get("unitId", 1)),
                           "poll_interval_s": float(s.get("pollPeriod", 5000)) / 1000}
    if kind == "serial":
        dev["transport"] = "rtu"
        dev["serial"] = {k: v for k, v in {
            "port": s.get("port"), "baudrate": s.get("baudrate"), "bytesize": s.get("bytesize"),
            "parity": s.get("parity"), "stopbits": s.get("stopbits")}.items() if v is not None}
    else:
        dev["host"] = s.get("host", "127.0.0.1")
        dev["port"] = int(s.get("port", 502))
        dev["transport"] = "rtu_over_tcp" if method == "rtu" else "tcp"
        if kind == "udp":
            out.notes.append(f"{where}: Modbus over UDP is not supported: polled over TCP")
    if "timeout" in s:
        # ThingsBoard's timeout is the connection's (35 s by default), not a request's
        out.notes.append(f"{where}: timeout {s['timeout']} s (ThingsBoard's connect timeout) "
                         "not taken: requests time out after timeout_s (default 1 s)")
    out.devices[name] = dev
    order = (str(s.get("byteOrder", "LITTLE")).upper(), str(s.get("wordOrder", "LITTLE")).upper())
    for section in ("timeseries", "attributes"):
        for j, key in enumerate(s.get(section) or []):
            _key(out, name, key, order, f"{where}.{section}[{j}]")
    for section in ("attributeUpdates", "rpc"):
        if s.get(section):
            out.notes.append(f"{where}.{section}: writes are not part of monitoring: left out")


def _key(out: Imported, device: str, k: dict[str, Any], order: tuple[str, str],
         where: str) -> None:
    tag, typ = str(k.get("tag", "")), str(k.get("type", ""))
    fc = int(k.get("functionCode", 3))
    table = TABLES.get(fc)
    if table is None:
        out.notes.append(f"{where}: function code {fc} is not a read: left out")
        return
    reg: dict[str, Any] = {"table": table, "address": int(k.get("address", 0))}
    if table in ("coil", "discrete"):
        reg["type"] = "bool"
    elif typ == "bits" and "bit" in k:
        reg.update(type="bit", bit=int(k["bit"]))
    elif typ in TYPES:
        reg["type"] = TYPES[typ]
        key_order = (str(k.get("byteOrder", order[0])).upper(),
                     str(k.get("wordOrder", order[1])).upper())
        wo = ORDERS.get(key_order, "ABCD")
        if wo != "ABCD":
            reg["word_order"] = wo
    else:
        out.notes.append(f"{where}: type {typ!r} ({tag}) has no counterpart here "
                         "(numbers of 16, 32 and 64 bits, bools and bits): left out")
        return
    if "multiplier" in k:
        reg["scale"] = float(k["multiplier"])
    elif "divider" in k:
        reg["scale"] = 1 / float(k["divider"])
    out.add_point(device, tag or f"{device}_{reg['address']}", reg)
