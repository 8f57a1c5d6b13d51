"""Configuration of one edge agent: its Modbus devices and register maps."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
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


class ModbusDevice(Strict):
    """A Modbus TCP device polled by the edge agent; value = raw × scale + offset."""

    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    poll_interval_s: float = Field(default=1.0, gt=0)
    timeout_s: float = Field(default=1.0, gt=0)
    max_registers_per_read: int = Field(default=125, ge=1, le=125)
    registers: dict[Identifier, Register] = Field(
        description="point id → register", min_length=1)


class MqttSensor(Strict):
    """An MQTT-native sensor: one topic, one point.

    The payload is either a plain number (``value_path`` unset) or a JSON object whose value
    sits at the dotted ``value_path``; the timestamp comes from ``ts_path`` (Unix ms) when
    given, otherwise from the arrival time.
    """

    topic: str = Field(min_length=1, pattern=r"^[^#+]+$",
                       description="exact topic (wildcards are not allowed: one topic, one point)")
    point: Identifier
    value_path: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
    ts_path: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


class EdgeAgent(Strict):
    """One edge agent: the devices it polls, the sensors it subscribes to, and how it
    batches for the uplink."""

    modbus: dict[Identifier, ModbusDevice] = Field(default_factory=dict)
    mqtt_sensors: dict[Identifier, MqttSensor] = Field(default_factory=dict)
    max_batch_readings: int = Field(default=1000, ge=1, le=100_000)
    max_batch_delay_s: float = Field(default=0.5, gt=0)

    def point_ids(self) -> list[tuple[str, str]]:
        """(config path below the edge, point id) of every mapped register and sensor."""
        return ([(f"modbus.{d}.registers.{p}", p) for d, dev in self.modbus.items()
                 for p in dev.registers]
                + [(f"mqtt_sensors.{sid}.point", s.point) for sid, s in self.mqtt_sensors.items()])
