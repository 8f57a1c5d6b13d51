"""Telegraf's ``inputs.modbus`` plugin (TOML), in both of its configuration styles:
``configuration_type = "register"`` (``holding_registers = [{name, address = [...],
data_type, byte_order, scale}]`` and the like) and ``"request"`` (``[[inputs.modbus.request]]``
with ``fields``). In the register style ``FLOAT32`` is not an IEEE float but a deprecated
alias of ``UFIXED`` (an unsigned integer times ``scale``); ``FLOAT32-IEEE`` is the float."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gateway.importers.model import ConfigImportError, Imported, identifier

TABLES = {"coils": "coil", "discrete_inputs": "discrete", "holding_registers": "holding",
          "input_registers": "input"}
REQUEST_TABLES = {"coil": "coil", "discrete": "discrete", "holding": "holding",
                  "input": "input"}
# register style: data_type (and the number of addresses for the fixed-point ones)
FIXED = {("FIXED", 1): "int16", ("FIXED", 2): "int32", ("FIXED", 4): "int64",
         ("UFIXED", 1): "uint16", ("UFIXED", 2): "uint32",
         ("FLOAT32", 1): "uint16", ("FLOAT32", 2): "uint32"}       # the trap: unsigned ints
PLAIN = {"INT16": "int16", "UINT16": "uint16", "INT32": "int32", "UINT32": "uint32",
         "INT64": "int64", "FLOAT32-IEEE": "float32", "FLOAT64-IEEE": "float64"}
REQUEST_TYPES = {"INT16": "int16", "UINT16": "uint16", "INT32": "int32", "UINT32": "uint32",
                 "INT64": "int64", "FLOAT32": "float32", "FLOAT64": "float64"}
ORDERS = {"AB": "ABCD", "BA": "BADC", "ABCD": "ABCD", "CDAB": "CDAB", "BADC": "BADC",
          "DCBA": "DCBA", "ABCDEFGH": "ABCD", "GHEFCDAB": "CDAB", "BADCFEHG": "BADC",
          "HGFEDCBA": "DCBA"}


def read(path: Path) -> Imported:
    """The devices of every ``[[inputs.modbus]]`` in a Telegraf config file."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigImportError(f"{path}: not a readable TOML file: {exc}") from None
    plugins = (doc.get("inputs") or {}).get("modbus")
    if not isinstance(plugins, list) or not plugins:
        raise ConfigImportError(f"{path}: no [[inputs.modbus]] section")
    out = Imported(f"Telegraf inputs.modbus {path.name}")
    for i, p in enumerate(plugins):
        try:
            _plugin(out, p, f"inputs.modbus[{i}]")
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigImportError(f"{path}: inputs.modbus[{i}]: a value of the wrong kind "
                                    f"({type(exc).__name__}: {exc})") from None
    return out


def _connection(out: Imported, p: dict[str, Any], where: str) -> dict[str, Any]:
    url = urlparse(str(p.get("controller", "tcp://127.0.0.1:502")))
    mode = str(p.get("transmission_mode", "auto")).upper()
    dev: dict[str, Any] = {}
    if url.scheme == "file":
        dev["transport"] = "rtu"
        dev["serial"] = {k: v for k, v in {
            "port": url.path, "baudrate": p.get("baud_rate"), "bytesize": p.get("data_bits"),
            "parity": p.get("parity"), "stopbits": p.get("stop_bits")}.items() if v is not None}
    else:
        dev["host"] = url.hostname or "127.0.0.1"
        dev["port"] = url.port or 502
        dev["transport"] = "rtu_over_tcp" if mode == "RTUOVERTCP" else "tcp"
    if "ASCII" in mode:
        out.notes.append(f"{where}: Modbus ASCII is not supported: set as RTU, check it")
    timeout = str(p.get("timeout", "1s"))
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if timeout.endswith(unit):
            dev["timeout_s"] = float(timeout[:-len(unit)]) * factor
            return dev
    raise ValueError(f"timeout {timeout!r} is not a duration (like \"500ms\" or \"1s\")")


def _plugin(out: Imported, p: dict[str, Any], where: str) -> None:
    base = _connection(out, p, where)
    name = identifier(str(p.get("name", "device")))
    if str(p.get("configuration_type", "register")) == "request":
        for j, req in enumerate(p.get("request") or []):
            dev = identifier(f"{name}_{req.get('slave_id', 1)}")
            out.devices.setdefault(dev, {**base, "unit_id": int(req.get("slave_id", 1))})
            _request(out, dev, req, f"{where}.request[{j}]")
        return
    dev = identifier(f"{name}_{p.get('slave_id', 1)}")
    out.devices[dev] = {**base, "unit_id": int(p.get("slave_id", 1))}
    for section, table in TABLES.items():
        for j, f in enumerate(p.get(section) or []):
            _register_field(out, dev, table, f, f"{where}.{section}[{j}]")


def _register_field(out: Imported, dev: str, table: str, f: dict[str, Any],
                    where: str) -> None:
    addresses = [int(a) for a in f.get("address") or []]
    if not addresses:
        out.notes.append(f"{where}: no address: left out")
        return
    reg: dict[str, Any] = {"table": table, "address": min(addresses)}
    if table in ("coil", "discrete"):
        reg["type"] = "bool"
    else:
        dt = str(f.get("data_type", "INT16")).upper()
        typ = FIXED.get((dt, len(addresses))) or PLAIN.get(dt)
        if typ is None:
            out.notes.append(f"{where}: data_type {dt} over {len(addresses)} address(es) has "
                             "no counterpart here: left out")
            return
        if dt == "FLOAT32":
            out.notes.append(f"{where}: FLOAT32 in Telegraf's register style is fixed point "
                             f"(UFIXED): read as {typ} × scale, not as an IEEE float")
        reg["type"] = typ
        order = ORDERS.get(str(f.get("byte_order", "AB")).upper(), "ABCD")
        if order != "ABCD":
            reg["word_order"] = order
        if "scale" in f and float(f["scale"]) != 1:
            reg["scale"] = float(f["scale"])
    out.add_point(dev, str(f.get("name", f"{dev}_{reg['address']}")), reg)


def _request(out: Imported, dev: str, req: dict[str, Any], where: str) -> None:
    table = REQUEST_TABLES.get(str(req.get("register", "holding")))
    if table is None:
        out.notes.append(f"{where}: register {req.get('register')!r} unknown: left out")
        return
    order = ORDERS.get(str(req.get("byte_order", "ABCD")).upper(), "ABCD")
    for j, f in enumerate(req.get("fields") or []):
        if f.get("omit"):
            continue
        reg: dict[str, Any] = {"table": table, "address": int(f.get("address", 0))}
        if table in ("coil", "discrete"):
            reg["type"] = "bool"
        else:
            typ = REQUEST_TYPES.get(str(f.get("type", "INT16")).upper())
            if typ is None:
                out.notes.append(f"{where}.fields[{j}]: type {f.get('type')!r} has no "
                                 "counterpart here: left out")
                continue
            reg["type"] = typ
            if order != "ABCD":
                reg["word_order"] = order
            if "scale" in f and float(f["scale"]) != 1:
                reg["scale"] = float(f["scale"])
        out.add_point(dev, str(f.get("name", f"{dev}_{reg['address']}")), reg)
