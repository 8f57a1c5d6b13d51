"""Configuration of one edge agent: its Modbus devices and register maps."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.wire import ID_PATTERN

Identifier = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
RegisterType = Literal["bool", "bit", "int16", "uint16", "int32", "uint32", "int64", "float32",
                       "float64"]

# Registers each type occupies.
WIDTH: dict[str, int] = {"bool": 1, "bit": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2,
                         "int64": 4, "float32": 2, "float64": 4}


class Strict(BaseModel):
    """Base for edge config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CurrentLoop(Strict):
    """A 4–20 mA input: the raw counts at 4 and 20 mA and the engineering range they span.
    Outside NAMUR NE43's measuring range (3.8–20.5 mA) the sample is uncertain; below 3.6 or
    above 21 mA (broken wire, short circuit, transmitter fault) it is bad and carries no value.
    """

    raw_at_4ma: float
    raw_at_20ma: float
    eng_low: float
    eng_high: float

    @model_validator(mode="after")
    def _distinct(self) -> CurrentLoop:
        if self.raw_at_4ma == self.raw_at_20ma:
            raise ValueError("raw_at_4ma and raw_at_20ma must differ")
        return self


class Register(Strict):
    """Where a point's raw value lives and how it becomes an engineering value."""

    table: Literal["holding", "input", "coil", "discrete"] = Field(
        default="holding", description="function code 3, 4, 1 or 2; coils and discrete inputs "
                                       "hold one bit per address (type bool)")
    address: int = Field(ge=0, le=65535)
    type: RegisterType = "float32"
    word_order: Literal["ABCD", "CDAB", "BADC", "DCBA"] = Field(
        default="ABCD",
        description="byte order of the value, A most significant: ABCD big-endian (Modbus "
                    "standard); CDAB word-swapped (\"little-endian word order\"); BADC "
                    "byte-swapped words; DCBA fully little-endian")
    bit: int | None = Field(default=None, ge=0, le=15,
                            description="for type bit: the bit of the register, 0 = LSB")
    scale: float = 1.0
    offset: float = 0.0
    current_loop: CurrentLoop | None = Field(
        default=None, description="4–20 mA scaling (replaces scale and offset)")

    @property
    def width(self) -> int:
        """Number of 16-bit registers the value occupies."""
        return WIDTH[self.type]

    @model_validator(mode="after")
    def _fits(self) -> Register:
        if self.address + self.width - 1 > 65535:
            raise ValueError(f"{self.type} at address {self.address} runs past register 65535")
        if (self.type == "bit") != (self.bit is not None):
            raise ValueError("bit is required for type bit, and only for it")
        if (self.table in ("coil", "discrete")) != (self.type == "bool"):
            raise ValueError("coils and discrete inputs are read as type bool, and only they")
        return self


class SerialLine(Strict):
    """An RS-485/RS-232 line for Modbus RTU. Slaves sharing a port share one connection and
    are polled one request at a time (the bus carries one conversation)."""

    port: str = Field(min_length=1, description="serial device, e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = Field(default="E", description="Modbus default: even")
    stopbits: Literal[1, 2] = 1


class Workarounds(Strict):
    """Per-device switches for devices that bend the Modbus specification."""

    pause_after_connect_s: float = Field(
        default=0.0, ge=0, le=30,
        description="wait this long after connecting before the first request (slow stacks)")
    max_registers_per_request: int = Field(
        default=125, ge=1, le=125,
        description="smaller reads for devices that refuse the standard 125 registers")
    max_gap: int = Field(
        default=0, ge=0, le=100,
        description="unused addresses a merged read may span (some devices answer an "
                    "exception for unmapped addresses: keep 0 for those)")
    one_request_per_field: bool = Field(
        default=False, description="never merge fields into one read")
    close_after_poll: bool = Field(
        default=False, description="disconnect after every poll (devices with few sockets)")


class ModbusDevice(Strict):
    """A Modbus device polled by the edge agent; value = raw × scale + offset.

    ``transport``: ``tcp`` (Modbus TCP, one connection per device), ``rtu_over_tcp`` (RTU
    frames through a serial-to-Ethernet converter at host:port) or ``rtu`` (a serial line);
    devices behind one converter or on one serial port share its connection.
    """

    transport: Literal["tcp", "rtu_over_tcp", "rtu"] = "tcp"
    host: str | None = Field(default=None, description="for tcp and rtu_over_tcp")
    port: int = Field(default=502, ge=1, le=65535)
    serial: SerialLine | None = Field(default=None, description="for rtu")
    unit_id: int = Field(default=1, ge=0, le=247)
    poll_interval_s: float = Field(default=1.0, gt=0)
    timeout_s: float = Field(default=1.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5,
                         description="requests repeated after a timeout within one poll "
                                     "(Modbus TCP only: on a serial or RTU-over-TCP line a "
                                     "repeated request's late answer could be taken for "
                                     "the next one's, so the line is reconnected instead)")
    offline_after_failures: int = Field(
        default=3, ge=1, le=100,
        description="consecutive failed polls before the device is said offline and backed "
                    "off (a slow device that fails now and then does not flap)")
    reconnect_max_s: float = Field(
        default=60.0, gt=0, description="cap of the exponential backoff after failed polls")
    workarounds: Workarounds = Workarounds()
    registers: dict[Identifier, Register] = Field(
        description="point id → register", min_length=1)

    @model_validator(mode="after")
    def _endpoint(self) -> ModbusDevice:
        if self.transport == "rtu":
            if self.serial is None:
                raise ValueError("transport rtu needs a serial block (port, baudrate, ...)")
            if self.host is not None:
                raise ValueError("transport rtu reads a serial line: host is not used")
        else:
            if self.host is None:
                raise ValueError(f"transport {self.transport} needs a host")
            if self.serial is not None:
                raise ValueError(f"transport {self.transport} does not use a serial block")
        return self

    def endpoint(self) -> str:
        """Where the device is reached, for log lines and to share a line."""
        if self.serial is not None:
            return f"serial:{self.serial.port}"
        return f"{self.transport}:{self.host}:{self.port}"


_PATH = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
_LEVEL = re.compile(r"\{(\d+)\}")


class MqttSensor(Strict):
    """MQTT-native sensors behind one topic filter.

    The payload is either a plain number (one ``point``, no paths) or a JSON object: one value
    at ``value_path`` for ``point``, or several at once with ``fields`` (point → path; a
    payload missing some delivers the others). The timestamp comes from ``ts_path`` (Unix
    time in ``ts_unit``) when given, otherwise from the arrival time; one more than 7 days
    old or 5 minutes ahead of the edge's clock is refused.
    With wildcards in the topic, a point id may name topic levels: ``{2}`` is the third level
    of the topic the message arrived on (``site/gas/+/state`` with point ``GT_{2}``).
    """

    topic: str = Field(min_length=1, description="topic or topic filter (+ and # allowed)")
    point: str | None = Field(default=None, min_length=1,
                              description="point id (may use {N} topic levels)")
    value_path: str | None = Field(default=None, pattern=_PATH)
    fields: dict[str, Annotated[str, Field(pattern=_PATH)]] = Field(
        default_factory=dict, description="point id (may use {N}) → dotted path of its value")
    ts_path: str | None = Field(default=None, pattern=_PATH)
    ts_unit: Literal["s", "ms", "us", "ns"] = Field(
        default="ms", description="unit of the Unix time at ts_path")
    allow_points: list[str] | None = Field(
        default=None, description="the point ids a {N} template may fill (default: points "
                                  "of the enterprise that no Modbus device reads)")

    @model_validator(mode="after")
    def _one_way(self) -> MqttSensor:
        if (self.point is None) == (not self.fields):
            raise ValueError("give either point (with value_path for JSON) or fields")
        if self.fields and self.value_path:
            raise ValueError("value_path belongs to point; fields carry their own paths")
        levels = self.topic.split("/")
        for i, level in enumerate(levels):
            if ("#" in level and (level != "#" or i != len(levels) - 1)) or \
                    ("+" in level and level != "+"):
                raise ValueError(f"topic filter {self.topic!r}: + must be a whole level and "
                                 "# the whole last level")
        bad = [p for p in self.allow_points or [] if not re.fullmatch(ID_PATTERN, p)]
        if bad:
            raise ValueError(f"allow_points: {bad[0]!r} is not a valid point id")
        for pid in self.points():
            for n in _LEVEL.findall(pid):
                if int(n) >= len(levels) and "#" not in levels:
                    raise ValueError(f"point {pid!r} names topic level {n}, but "
                                     f"{self.topic!r} has {len(levels)} levels")
            if not re.fullmatch(ID_PATTERN, _LEVEL.sub("x", pid)):
                raise ValueError(f"point {pid!r} is not a valid point id")
        return self

    def points(self) -> list[str]:
        """The point ids or id templates this sensor fills."""
        return [self.point] if self.point is not None else list(self.fields)

    def resolve(self, template: str, topic: str) -> str:
        """A point id with its ``{N}`` topic levels filled in from ``topic``."""
        if "{" not in template:          # the common case, once per sensor message
            return template
        levels = topic.split("/")
        return _LEVEL.sub(lambda m: levels[int(m.group(1))] if int(m.group(1)) < len(levels)
                          else "", template)


class EdgeConfig(Strict):
    """One edge agent: the devices it polls, the sensors it subscribes to, and how it
    batches for the uplink."""

    modbus: dict[Identifier, ModbusDevice] = Field(default_factory=dict)
    mqtt_sensors: dict[Identifier, MqttSensor] = Field(default_factory=dict)
    max_batch_readings: int = Field(default=1000, ge=1, le=100_000)
    max_batch_delay_s: float = Field(default=0.5, gt=0)
    stats_interval_s: float = Field(default=10.0, gt=0,
                                    description="how often the agent publishes self-metrics")

    def point_ids(self) -> list[tuple[str, str]]:
        """(config path below the edge, point id) of every mapped register and sensor; ids
        taken from topic levels are known only at run time and are left out (the core counts
        readings of unknown points)."""
        sensors = [(f"mqtt_sensors.{sid}." + ("point" if s.point else f"fields.{p}"), p)
                   for sid, s in self.mqtt_sensors.items() for p in s.points()]
        return ([(f"modbus.{d}.registers.{p}", p) for d, dev in self.modbus.items()
                 for p in dev.registers]
                + [(path, p) for path, p in sensors if not _LEVEL.search(p)])
