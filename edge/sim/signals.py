"""Signal models of a simulated plant: pure functions of simulated time, vectorised.

A point's value at time ``t`` (seconds since the scenario started) is built in three layers:

1. the **process value**: a baseline (the middle of the normal band, or a recorded series
   replayed from CSV) changed by process effects in time order — step, ramp, drift, tank fill
   and drain from flows, a leak plume, dust-collector clogging with the pulse-cleaning
   sawtooth, spark bursts — and held inside the instrument's range;
2. **noise**, from a counter-based hash of (seed, point, time in ms): the same seed gives the
   same series bit for bit whatever order or batch size the values are asked in;
3. **faults** of the instrument: stuck, dropout (no value: NaN), spikes, out of range,
   tamper (a covered probe reads zero).

Nothing here knows about Modbus or MQTT; ``edge.sim.simulator`` serves these values.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a well-spread 64-bit hash (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def key_of(name: str) -> int:
    """A stable 32-bit key for a point name (Python's hash() changes between runs)."""
    return zlib.crc32(name.encode())


def uniform(seed: int, key: int, t_ms: npt.NDArray[np.int64]) -> F64:
    """Uniform [0, 1) numbers, one per time, fixed by (seed, key, t_ms)."""
    with np.errstate(over="ignore"):
        base = _mix(np.array([(seed & 0xFFFFFFFF) << 32 | (key & 0xFFFFFFFF)], np.uint64))
        h = _mix(t_ms.astype(np.uint64) ^ base)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def normal(seed: int, key: int, t_ms: npt.NDArray[np.int64]) -> F64:
    """Standard normal numbers, one per time (Box-Muller on two hashed uniforms)."""
    u1 = uniform(seed, key, t_ms)
    u2 = uniform(seed, key ^ 0x5A5A5A5A, t_ms)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2 * np.pi * u2)


@dataclass(frozen=True)
class Effect:
    """One timeline event on a point. ``kind`` names it (see ``PROCESS`` and ``FAULTS``);
    it starts at ``at_s`` and lasts ``for_s`` (None: to the end). A process effect that
    ends holds what it reached (a fill stops, the level stays), except a step, which
    reverts; a fault that ends stops."""

    kind: str
    at_s: float
    for_s: float | None = None
    params: dict[str, float] = field(default_factory=dict)

    def active(self, t: F64) -> npt.NDArray[np.bool_]:
        """Where the effect is in force."""
        end = np.inf if self.for_s is None else self.at_s + self.for_s
        return (t >= self.at_s) & (t < end)

    def elapsed(self, t: F64) -> F64:
        """Seconds since the start, 0 before it, frozen at the end."""
        top = np.inf if self.for_s is None else self.for_s
        return np.clip(t - self.at_s, 0.0, top)

    def p(self, name: str, default: float | None = None) -> float:
        """A parameter, or its default; a missing required one names itself."""
        if name in self.params:
            return self.params[name]
        if default is None:
            raise ValueError(f"{self.kind} at {self.at_s:g}s needs {name}")
        return default


def _step(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    on = e.active(t)
    target = e.p("to") if "to" in e.params else v + e.p("by")
    return np.where(on, target, v)


def _ramp(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    over = e.p("over_s")
    w = np.clip((t - e.at_s) / over, 0.0, 1.0) if over > 0 else (t >= e.at_s) * 1.0
    start = ctx.process(np.array([e.at_s]), upto=e)[0]   # ramp from where the value was
    return np.where(t >= e.at_s, start + w * (e.p("to") - start), v)


def _drift(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    return v + e.p("per_h") * e.elapsed(t) / 3600.0


def _fill(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    # level change of a vertical tank from its net flow: Δh = (Qin − Qout)·Δt / A
    net = e.p("in_m3_h", 0.0) - e.p("out_m3_h", 0.0)
    return v + net / e.p("area_m2") * e.elapsed(t) / 3600.0


def _leak(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    # The plume reaches the detector with a first-order rise; after isolation it decays
    # from whatever it had reached. Turbulence makes the reading fluctuate with its size.
    peak, rise, decay = e.p("peak"), e.p("rise_s", 60.0), e.p("decay_s", 120.0)
    iso = e.p("isolate_after_s", np.inf)
    dt = np.maximum(t - e.at_s, 0.0)
    grow = peak * (1 - np.exp(-np.minimum(dt, iso) / rise))
    plume = np.where(dt > iso, grow * np.exp(-(dt - iso) / decay), grow)
    turb = e.p("turbulence", 0.1) * normal(ctx.seed, ctx.key ^ 0x1EAC, ctx.t_ms(t))
    return v + np.where(t >= e.at_s, plume * (1 + turb), 0.0)


def _clog(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    # ΔP creeps up as the bags blind; each pulse-cleaning drops it by pulse_drop and it
    # builds again over the period: a sawtooth on a rising line.
    dt = e.elapsed(t)
    period = e.p("pulse_every_s", 0.0)
    saw = e.p("pulse_drop", 0.0) * ((dt % period) / period) if period > 0 else 0.0
    return v + np.where(t >= e.at_s, e.p("creep_per_h") * dt / 3600.0 + saw, 0.0)


def _sparks(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    rate = e.p("per_min")
    count = np.floor(rate * (0.5 + uniform(ctx.seed, ctx.key ^ 0x5BA4, ctx.t_ms(t))))
    return np.where(e.active(t), np.maximum(count, 1.0), v)


def _stuck(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    held = ctx.before_faults(np.array([e.at_s]))[0]
    return np.where(e.active(t), held, v)


def _dropout(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    return np.where(e.active(t), np.nan, v)


def _spikes(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    every, width = e.p("every_s"), e.p("width_s", 1.0)
    on = e.active(t) & (((t - e.at_s) % every) < width)
    return np.where(on, v + e.p("height"), v)


def _out_of_range(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    value = e.p("value", ctx.range_high + 0.1 * (ctx.range_high - ctx.range_low))
    return np.where(e.active(t), value, v)


def _tamper(e: Effect, t: F64, v: F64, ctx: PointSignal) -> F64:
    return np.where(e.active(t), e.p("value", 0.0), v)


# Literal registries: a scenario names an effect by these keys.
PROCESS = {"step": _step, "ramp": _ramp, "drift": _drift, "fill": _fill, "leak": _leak,
           "clog": _clog, "sparks": _sparks}
FAULTS = {"stuck": _stuck, "dropout": _dropout, "spikes": _spikes,
          "out_of_range": _out_of_range, "tamper": _tamper}


@dataclass(frozen=True)
class Recorded:
    """A recorded series: seconds since its first sample, and values (NaN where missing).
    Between samples the last value holds; beyond ``gap_s`` after a sample there is none."""

    t_s: F64
    values: F64
    gap_s: float

    def at(self, t: F64) -> F64:
        """The recorded value in force at each time (NaN before the first, in gaps)."""
        i = np.searchsorted(self.t_s, t, side="right") - 1
        ok = i >= 0
        j = np.maximum(i, 0)
        fresh = ok & (t - self.t_s[j] <= self.gap_s)
        return np.where(fresh, self.values[j], np.nan)

    def sample_time(self, t: float) -> float | None:
        """When the sample in force at ``t`` was taken (None before the first)."""
        i = int(np.searchsorted(self.t_s, t, side="right")) - 1
        return float(self.t_s[i]) if i >= 0 else None


@dataclass
class PointSignal:
    """The value of one point over time: baseline or recording, effects, noise, faults."""

    name: str
    baseline: float
    range_low: float
    range_high: float
    noise_std: float = 0.0
    seed: int = 0
    start_ms: int = 0
    recorded: Recorded | None = None
    effects: Sequence[Effect] = ()

    def __post_init__(self) -> None:
        self.key = key_of(self.name)
        unknown = [e.kind for e in self.effects if e.kind not in PROCESS and e.kind not in FAULTS]
        if unknown:
            raise ValueError(f"{self.name}: unknown effect {unknown[0]!r}; known: "
                             f"{', '.join([*PROCESS, *FAULTS])}")
        self.effects = sorted(self.effects, key=lambda e: e.at_s)

    def t_ms(self, t: F64) -> npt.NDArray[np.int64]:
        """Absolute ms of simulated times: the noise's counter."""
        return self.start_ms + np.round(np.asarray(t) * 1000).astype(np.int64)

    def process(self, t: F64, upto: Effect | None = None) -> F64:
        """The noiseless process value, with the process effects before ``upto``."""
        t = np.asarray(t, np.float64)
        v = (self.recorded.at(t) if self.recorded is not None
             else np.full(t.shape, self.baseline))
        for e in self.effects:
            if e is upto:
                break
            if e.kind in PROCESS:
                v = PROCESS[e.kind](e, t, v, self)
        return v

    def before_faults(self, t: F64) -> F64:
        """Process value plus noise, held inside the instrument's range."""
        v = self.process(t)
        if self.noise_std:
            v = v + self.noise_std * normal(self.seed, self.key, self.t_ms(t))
        return np.clip(v, self.range_low, self.range_high)

    def values(self, t: F64) -> F64:
        """What the instrument reports at each time; NaN where it reports nothing."""
        t = np.asarray(t, np.float64)
        v = self.before_faults(t)
        for e in self.effects:
            if e.kind in FAULTS:
                v = FAULTS[e.kind](e, t, v, self)
        return v
