"""Configuration of the alarm rules beyond plain limits: delays, rate of change, trend,
stale, flatline, tamper, voting and consoles. Defaults follow domain.md and are editable."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# On-/off-delays (s) by point kind: ISA-18.2 practice collected in domain.md §6.2 (tag C, so
# configurable per point). No source allows delaying GB/T 50493 gas alarms: gas kinds get none.
DEFAULT_DELAYS_S: dict[str, tuple[float, float]] = {
    "flow": (15.0, 15.0), "level": (60.0, 60.0), "pressure": (15.0, 5.0),
    "differential_pressure": (15.0, 5.0), "temperature": (60.0, 0.0),
    "combustible_gas": (0.0, 0.0), "toxic_gas": (0.0, 0.0), "spark": (0.0, 0.0),
    "digital": (0.0, 0.0),
}

GAS_KINDS = ("combustible_gas", "toxic_gas")


class RuleModel(BaseModel):
    """Base of the rule models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RocRule(RuleModel):
    """Rate-of-change alarm: the change over ``window_s`` exceeds a rising or falling limit."""

    rise_per_min: float | None = Field(default=None, gt=0, description="units per minute")
    fall_per_min: float | None = Field(default=None, gt=0, description="units per minute")
    window_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _one_limit(self) -> RocRule:
        if self.rise_per_min is None and self.fall_per_min is None:
            raise ValueError("give rise_per_min, fall_per_min or both")
        return self


class TrendRule(RuleModel):
    """Predictive warning: a linear fit over ``window_s`` reaches the next limit within
    ``horizon_s``. The fit counts only when its slope is at least 3 standard errors from zero
    and its samples span half the window, so noise does not warn. Labelled predictive; never
    a GB/T 50493 alarm."""

    horizon_s: float = Field(default=300.0, gt=0,
                             description="warn when the limit is this near (default: as far "
                                         "ahead as the default window looks back)")
    window_s: float = Field(default=300.0, gt=0)
    min_samples: int = Field(default=5, ge=3)


class FlatlineRule(RuleModel):
    """Stuck sensor: successive values within ``tolerance`` for ``suspect_s`` (level 1) or
    ``fail_s`` (level 2)."""

    suspect_s: float = Field(default=300.0, gt=0)
    fail_s: float = Field(default=900.0, gt=0)
    tolerance: float = Field(default=0.0, ge=0, description="engineering units")
    related: list[str] | None = Field(
        default=None, description="points whose movement makes a flat value suspicious "
                                  "(default: the other points of the same equipment)")
    require_related_moving: bool = Field(
        default=False, description="alarm only while a related point moves (gas detectors in "
                                   "clean air legitimately read a flat zero)")

    @model_validator(mode="after")
    def _order(self) -> FlatlineRule:
        if self.fail_s <= self.suspect_s:
            raise ValueError(f"fail_s ({self.fail_s}) must be above suspect_s ({self.suspect_s})")
        return self


class TamperRule(RuleModel):
    """Sudden drop to the bottom of the range (a covered or pulled probe): from at least
    ``from_fraction`` of span to within ``zero_fraction`` of range_low in ``within_s``."""

    from_fraction: float = Field(default=0.1, gt=0, lt=1)
    zero_fraction: float = Field(default=0.005, ge=0, lt=1)
    within_s: float = Field(default=10.0, gt=0)


class Vote(RuleModel):
    """k-out-of-n composite alarm (e.g. 2oo3 gas detectors in one area)."""

    points: list[str] = Field(min_length=2)
    k: int = Field(ge=1)
    level: Literal[1, 2] = Field(default=1, description="1: H / first level, 2: HH / second")

    @model_validator(mode="after")
    def _k_fits(self) -> Vote:
        if self.k > len(self.points):
            raise ValueError(f"k = {self.k} exceeds the {len(self.points)} voting points")
        return self


class Console(RuleModel):
    """An operator console and the hazard sources it watches (alarm-rate KPIs per console)."""

    hazard_sources: list[str] = Field(min_length=1)


class SuppressRule(RuleModel):
    """Suppression by design: the point's process alarms are suppressed while another point
    (e.g. the pump's run signal) is below ``below`` or above ``above``."""

    point: str
    below: float | None = None
    above: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> SuppressRule:
        if self.below is None and self.above is None:
            raise ValueError("give below, above or both")
        return self
