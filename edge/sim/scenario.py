"""Scenario files: a timeline of events on a site's points and devices, and what it must raise.

```yaml
description: LPG sphere V-101 overfills
seed: 1                       # same seed, same series bit for bit
duration_s: 600
speed: 100                    # default pace of `hazgw simulate` (1× to 1000×)
points:                       # optional: signal models replacing the default baseline
  V101_level: {baseline: 9.0, noise: 0.005}
  T201_level: {replay: {csv: t201_level.csv}}     # a recorded series
events:
  - {at_s: 30, point: V101_level, do: fill, in_m3_h: 400, area_m2: 78.5}
  - {at_s: 120, device: plc-dust, do: offline, for_s: 60}
expect:
  - {point: V101_level, level: H, at_s: 250, within_s: 30}
  - {point: V102_level, level: H, never: true}
```

Point effects are ``edge.sim.signals.PROCESS`` and ``FAULTS``; device faults are ``DEVICE_FAULTS``.
Loading checks every reference against the site, and a bad file lists every error by path.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.sim.signals import FAULTS, PROCESS, Effect, PointSignal, Recorded

# What each effect takes; anything else in an event is a typo and is reported.
PARAMS: dict[str, set[str]] = {
    "step": {"to", "by"}, "ramp": {"to", "over_s"}, "drift": {"per_h"},
    "fill": {"in_m3_h", "out_m3_h", "area_m2"},
    "leak": {"peak", "rise_s", "decay_s", "isolate_after_s", "turbulence"},
    "clog": {"creep_per_h", "pulse_every_s", "pulse_drop"}, "sparks": {"per_min"},
    "stuck": set(), "dropout": set(), "spikes": {"every_s", "height", "width_s"},
    "out_of_range": {"value"}, "tamper": {"value"},
    "offline": set(), "exception": {"code"}, "timeout": set(),
}
DEVICE_FAULTS = ("offline", "exception", "timeout")
BEIJING = timezone(timedelta(hours=8))
MISSING = ("", "nan", "NaN", "NA", "N/A", "null", "None", "-")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Replay(_Strict):
    """A recorded series: CSV with a time column (epoch ms, epoch s or ISO 8601) and a value
    column; rows whose value is a missing-value marker are gaps."""

    csv: Path
    time_column: str = "timestamp"
    value_column: str = "value"
    missing: tuple[str, ...] = MISSING
    gap_s: float | None = Field(default=None, gt=0, description="no value after this long "
                                "without a sample; default 3 × the median sample interval")


class PointModel(_Strict):
    """How a point behaves when no event acts on it."""

    baseline: float | None = Field(default=None, description="default: mid normal band")
    noise: float | None = Field(default=None, ge=0, description="standard deviation in the "
                                "point's unit; default 0.2 % of its span (0 for switches)")
    replay: Replay | None = None


class Event(BaseModel):
    """``do`` on a ``point`` or a ``device`` at ``at_s``, for ``for_s`` (None: to the end);
    the effect's parameters sit beside them."""

    model_config = ConfigDict(extra="allow", frozen=True)

    at_s: float = Field(ge=0)
    do: str
    point: str | None = None
    device: str | None = None
    for_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Event:
        if (self.point is None) == (self.device is None):
            raise ValueError("give exactly one of point and device")
        known = DEVICE_FAULTS if self.device is not None else (*PROCESS, *FAULTS)
        if self.do not in known:
            raise ValueError(f"do: {self.do!r} is not one of {', '.join(known)}")
        extra = self.params()
        unknown = sorted(set(extra) - PARAMS[self.do])
        if unknown:
            raise ValueError(f"{self.do} takes {sorted(PARAMS[self.do]) or 'no parameters'}, "
                             f"not {', '.join(unknown)}")
        bad = [k for k, v in extra.items() if not isinstance(v, int | float)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: must be a number")
        return self

    def params(self) -> dict[str, float]:
        """The effect's parameters (the fields beyond the declared ones)."""
        return dict(self.__pydantic_extra__ or {})


class Expectation(_Strict):
    """An alarm that must (or, with ``never``, must not) be raised: ``level`` as the engine
    names it (H, HH, L1, L2, stale, suspect, rising, toward_high, fault, ...) on ``point``,
    at ``at_s`` ± ``within_s`` of simulated time."""

    point: str
    level: str
    type: str | None = Field(default=None, description="alarm type (process, fault, stale, "
                             "flatline, tamper, predictive, roc, vote); default: any")
    at_s: float | None = Field(default=None, ge=0)
    within_s: float = Field(default=0.0, ge=0)
    never: bool = False

    @model_validator(mode="after")
    def _check(self) -> Expectation:
        if self.never == (self.at_s is not None):
            raise ValueError("give at_s (when it must happen) or never: true, not both")
        return self


class Scenario(_Strict):
    """A whole scenario file."""

    description: str = ""
    seed: int = 0
    start: datetime = Field(default=datetime(2026, 1, 1, 8, 0, tzinfo=BEIJING),
                            description="simulated time of t = 0 (timezone required)")
    duration_s: float = Field(gt=0, le=366 * 86400)
    step_s: float | None = Field(default=None, gt=0, description="the test kit's clock "
                                 "step; default: the shortest poll interval")
    speed: float = Field(default=1.0, ge=1, le=1000)
    points: dict[str, PointModel] = {}
    events: list[Event] = []
    expect: list[Expectation] = []

    @property
    def start_ms(self) -> int:
        """t = 0 in ms since the epoch."""
        if self.start.tzinfo is None:
            raise ValueError("scenario start needs a timezone, e.g. 2026-01-01T08:00:00+08:00")
        return int(self.start.timestamp() * 1000)


class ScenarioError(ValueError):
    """A scenario that cannot run; the message lists every problem by path."""


def load_scenario(path: Path | str) -> tuple[Scenario, Path]:
    """The scenario in ``path`` and the folder its relative paths start from."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return parse_scenario(doc, str(path)), path.parent


def parse_scenario(doc: Any, where: str = "scenario") -> Scenario:
    """A validated Scenario, or ScenarioError listing every error by path."""
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}"
                 for e in exc.errors()]
        raise ScenarioError(f"{where}: {len(lines)} error(s)\n" + "\n".join(lines)) from None


class SimPoint(Protocol):
    """What the simulator needs of a configured point."""

    @property
    def kind(self) -> str: ...
    @property
    def range_low(self) -> float: ...
    @property
    def range_high(self) -> float: ...
    @property
    def lo(self) -> float | None: ...
    @property
    def hi(self) -> float | None: ...


_AT_ZERO = ("combustible_gas", "toxic_gas", "spark", "digital")


def normal_value(p: SimPoint) -> float:
    """A value in the middle of the point's normal band (zero for detectors and switches)."""
    if p.kind in _AT_ZERO:
        return p.range_low
    low = p.lo if p.lo is not None else p.range_low
    high = p.hi if p.hi is not None else p.range_high
    return low + 0.5 * (high - low)


def read_recording(r: Replay, base: Path) -> Recorded:
    """A Replay's CSV as a Recorded series; errors name the file and row."""
    path = r.csv if r.csv.is_absolute() else base / r.csv
    times: list[float] = []
    values: list[float] = []
    try:
        with path.open(newline="") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                try:
                    t = _time_s(row[r.time_column])
                    raw = (row[r.value_column] or "").strip()
                    values.append(math.nan if raw in r.missing else float(raw))
                except KeyError as exc:
                    raise ScenarioError(f"{path}: no column {exc}") from None
                except ValueError as exc:
                    raise ScenarioError(f"{path} line {n}: {exc}") from None
                if times and t < times[-1]:
                    raise ScenarioError(f"{path} line {n}: time goes backwards")
                times.append(t)
    except OSError as exc:
        raise ScenarioError(f"replay: {exc}") from None
    if not times:
        raise ScenarioError(f"{path}: no rows")
    t_s = np.array(times) - times[0]
    steps = np.diff(t_s)
    gap = r.gap_s or (3 * float(np.median(steps)) if len(steps) else math.inf)
    return Recorded(t_s, np.array(values), gap)


def _time_s(text: str) -> float:
    text = text.strip()
    try:
        x = float(text)
    except ValueError:
        when = datetime.fromisoformat(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=BEIJING)
        return when.timestamp()
    return x / 1000 if x > 1e11 else x     # epoch ms or epoch s


@dataclass(frozen=True)
class DeviceFault:
    """What a device does wrong right now: ``offline`` (refuses connections), ``exception``
    (answers with Modbus exception ``code``) or ``timeout`` (never answers)."""

    kind: str
    code: int = 4


class SimPlant:
    """A site's points and devices driven by a scenario: values and faults at any time."""

    def __init__(self, scenario: Scenario, points: Mapping[str, SimPoint],
                 devices: Mapping[str, object], base: Path = Path(".")) -> None:
        problems = [f"points.{p}: no such point in the site" for p in scenario.points
                    if p not in points]
        for i, e in enumerate(scenario.events):
            if e.point is not None and e.point not in points:
                problems.append(f"events[{i}].point: no such point {e.point!r}")
            if e.device is not None and e.device not in devices:
                problems.append(f"events[{i}].device: no such Modbus device {e.device!r}")
        for i, x in enumerate(scenario.expect):
            # a point, or a device's off line alarm by its "<edge>/<device>" name
            if x.point not in points and x.point.rpartition("/")[2] not in devices:
                problems.append(f"expect[{i}].point: no such point {x.point!r} (nor "
                                "<edge>/<device>)")
        if problems:
            raise ScenarioError(f"scenario does not fit the site: {len(problems)} error(s)\n"
                                + "\n".join(f"  {p}" for p in problems))
        self.scenario = scenario
        self.start_ms = scenario.start_ms
        self.signals: dict[str, PointSignal] = {}
        for pid, p in points.items():
            m = scenario.points.get(pid, PointModel())
            span = p.range_high - p.range_low
            default_noise = 0.0 if p.kind in ("spark", "digital") else 0.002 * span
            self.signals[pid] = PointSignal(
                pid, normal_value(p) if m.baseline is None else m.baseline,
                p.range_low, p.range_high,
                default_noise if m.noise is None else m.noise, scenario.seed, self.start_ms,
                read_recording(m.replay, base) if m.replay is not None else None,
                [Effect(e.do, e.at_s, e.for_s, e.params()) for e in scenario.events
                 if e.point == pid])
        self._faults = [e for e in scenario.events if e.device is not None]

    def values(self, pid: str, t_s: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The series of one point at simulated times (s since start); NaN: no value."""
        return self.signals[pid].values(t_s)

    def value(self, pid: str, t_s: float) -> float:
        """One point at one time."""
        return float(self.signals[pid].values(np.array([t_s]))[0])

    def sample_time(self, pid: str, t_s: float) -> float | None:
        """For a replayed point, when its sample in force at ``t_s`` was recorded (an
        event-driven sensor publishes each sample once); None for a modelled point."""
        rec = self.signals[pid].recorded
        return None if rec is None else rec.sample_time(t_s)

    def fault(self, device: str, t_s: float) -> DeviceFault | None:
        """The device's fault in force at ``t_s``, if any (the latest started wins)."""
        now = None
        for e in self._faults:
            if e.device == device and e.at_s <= t_s and (e.for_s is None
                                                         or t_s < e.at_s + e.for_s):
                now = DeviceFault(e.do, int(e.params().get("code", 4)))
        return now
