"""The plant model: enterprise → hazard sources → equipment → points, validated on load.

Limits follow GB/T 50493-2019 for gas points (domain.md §1.1): combustible L1 (hi) ≤ 25 %LEL and
L2 (hihi) ≤ 50 %LEL; toxic L1 ≤ 100 % OEL and L2 ≤ 200 % OEL, or ≤ 5 % / 10 % IDLH when the
detector range cannot reach the OEL-based values. A point may opt out only with a stated reason.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from alerting.codes import division_problem, industry_problem
from alerting.grading import SUBSTANCES, Grading, Inventory, alpha_for_population, grade
from alerting.rulecfg import (
    DEFAULT_DELAYS_S,
    GAS_KINDS,
    Console,
    FlatlineRule,
    RocRule,
    SuppressRule,
    TamperRule,
    TrendRule,
    Vote,
)

PointKind = Literal[
    "combustible_gas", "toxic_gas", "level", "temperature", "pressure",
    "differential_pressure", "flow", "spark", "digital",
]
LIMIT_NAMES = ("lolo", "lo", "hi", "hihi")

# Default reset deadband in % of span by point kind: ISA-18.2 practice as collected in
# domain.md §6.2 (tag C, so configurable per point). Gas and binary points have no source.
DEFAULT_DEADBAND_PCT: dict[str, float] = {
    "flow": 5.0, "level": 5.0, "pressure": 2.0, "differential_pressure": 2.0,
    "temperature": 1.0, "combustible_gas": 1.0, "toxic_gas": 1.0, "spark": 0.0, "digital": 0.0,
}

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def rule_problems(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """One validation error carrying several field-level problems (see gateway.site)."""
    summary = "; ".join(f"{f}: {m}" for f, m in problems)
    return PydanticCustomError("plant_rules", "{summary}",
                               {"summary": summary, "problems": problems})


class GasInfo(Strict):
    """What GB/T 50493 needs to check a toxic gas point's limits."""

    substance: str
    oel: float = Field(gt=0, description="occupational exposure limit, in the point's unit")
    oel_basis: Literal["MAC", "PC-STEL", "PC-TWA"]
    idlh: float | None = Field(default=None, gt=0, description="IDLH, in the point's unit")
    range_insufficient: bool = Field(
        default=False, description="detector range cannot cover the OEL-based setpoints"
    )


class Point(Strict):
    """One measured quantity with its instrument range and alarm limits."""

    kind: PointKind
    name: str = ""
    unit: str
    range_low: float
    range_high: float
    lolo: float | None = None
    lo: float | None = None
    hi: float | None = None
    hihi: float | None = None
    deadband: float | None = Field(default=None, ge=0, description="in engineering units")
    on_delay_s: float | None = Field(default=None, ge=0, description="default by kind")
    off_delay_s: float | None = Field(default=None, ge=0, description="default by kind")
    latched: bool | None = Field(
        default=None, description="an alarm that returns to normal unacknowledged waits for "
                                  "the acknowledgement (default: gas points)")
    re_alarm_s: float | None = Field(
        default=None, gt=0, description="an acknowledged alarm still active this long "
                                        "annunciates again")
    roc: RocRule | None = None
    trend: TrendRule | None = None
    stale_after_s: float | None = Field(
        default=None, gt=0, description="no reading this long is a stale (deadman) alarm "
                                        "(default: 10 × the poll interval, at least 30 s)")
    flatline: FlatlineRule | None = None
    tamper: TamperRule | None = None
    suppress_when: SuppressRule | None = None
    gas: GasInfo | None = None
    gbt50493: bool = Field(default=True, description="gas point subject to GB/T 50493 limits")
    gbt50493_exempt_reason: str | None = None

    @property
    def delays_s(self) -> tuple[float, float]:
        """(on-delay, off-delay) in seconds, the kind's defaults where not configured."""
        on, off = DEFAULT_DELAYS_S[self.kind]
        return (on if self.on_delay_s is None else self.on_delay_s,
                off if self.off_delay_s is None else self.off_delay_s)

    @property
    def is_latched(self) -> bool:
        """Whether an unacknowledged alarm stays after the value returns to normal."""
        return self.kind in GAS_KINDS if self.latched is None else self.latched

    @property
    def effective_deadband(self) -> float:
        """Deadband in engineering units, the kind's default when not configured."""
        if self.deadband is not None:
            return self.deadband
        return (self.range_high - self.range_low) * DEFAULT_DEADBAND_PCT[self.kind] / 100.0

    @model_validator(mode="after")
    def _check_limits(self) -> Point:
        problems: list[tuple[str, str]] = []
        if self.range_low >= self.range_high:
            problems.append(("range_high", f"must be above range_low ({self.range_low})"))
        set_limits = [(n, getattr(self, n)) for n in LIMIT_NAMES if getattr(self, n) is not None]
        for name, value in set_limits:
            if not self.range_low <= value <= self.range_high:
                problems.append(
                    (name, f"{value} is outside the instrument range "
                           f"[{self.range_low}, {self.range_high}]"))
        for (lower, lv), (upper, uv) in itertools.pairwise(set_limits):
            if lv >= uv:
                problems.append((lower, f"must be below {upper} ({lv} >= {uv})"))
        problems += self._gas_problems()
        if problems:
            raise rule_problems(problems)
        return self

    def _gas_problems(self) -> list[tuple[str, str]]:
        if self.kind not in ("combustible_gas", "toxic_gas"):
            return []
        if not self.gbt50493:
            if not self.gbt50493_exempt_reason:
                return [("gbt50493_exempt_reason", "required when gbt50493 is false")]
            return []
        out: list[tuple[str, str]] = []
        if self.hi is None:
            out.append(("hi", "GB/T 50493 requires a first-level alarm (hi) on gas points"))
        if self.hihi is None:
            out.append(("hihi", "GB/T 50493 requires a second-level alarm (hihi) on gas points"))
        if self.kind == "combustible_gas":
            if self.unit != "%LEL":
                out.append(("unit", f"combustible gas is measured in %LEL, not {self.unit!r}"))
            l1, l2 = 25.0, 50.0
            basis = "%LEL"
        else:
            if self.gas is None:
                return [*out, ("gas", "toxic gas points need gas.substance, gas.oel and "
                                      "gas.oel_basis for the GB/T 50493 check")]
            if self.gas.range_insufficient:
                if self.gas.idlh is None:
                    return [*out, ("gas.idlh", "required when gas.range_insufficient is true")]
                l1, l2 = 0.05 * self.gas.idlh, 0.10 * self.gas.idlh
                basis = f"{self.unit} (5 % / 10 % IDLH)"
            else:
                l1, l2 = self.gas.oel, 2.0 * self.gas.oel
                basis = f"{self.unit} (100 % / 200 % {self.gas.oel_basis})"
        if self.hi is not None and self.hi > l1:
            out.append(("hi", f"GB/T 50493 first-level alarm must be <= {l1:g} {basis}, "
                              f"got {self.hi:g}"))
        if self.hihi is not None and self.hihi > l2:
            out.append(("hihi", f"GB/T 50493 second-level alarm must be <= {l2:g} {basis}, "
                                f"got {self.hihi:g}"))
        return out


class Equipment(Strict):
    """A vessel, reactor, collector or area that carries points."""

    kind: Literal[
        "spherical_tank", "tank", "reactor", "dust_collector", "warehouse", "pipeline",
        "area", "other",
    ]
    name: str = ""
    points: dict[Identifier, Point] = Field(default_factory=dict)
    votes: dict[Identifier, Vote] = Field(
        default_factory=dict, description="k-out-of-n composite alarms over this equipment's "
                                          "points")

    @model_validator(mode="after")
    def _votes_name_own_points(self) -> Equipment:
        problems = [(f"votes.{vid}.points", f"{p!r} is not a point of this equipment")
                    for vid, v in self.votes.items() for p in v.points if p not in self.points]
        if problems:
            raise rule_problems(problems)
        return self


class Person(Strict):
    """A responsible person with the contacts that alarms are routed to."""

    name: str = Field(min_length=1)
    phone: str = Field(pattern=r"^\+?[0-9][0-9 \-]{5,20}$")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")


class ResponsiblePersons(Strict):
    """The three 包保 persons of a major hazard source: main, technical, operational."""

    main: Person
    technical: Person
    operational: Person


class Substance(Strict):
    """Quantity q of one substance held in the unit; Q and β from GB 18218 unless given."""

    substance: str
    quantity_t: float = Field(gt=0)
    critical_quantity_t: float | None = Field(default=None, gt=0)
    beta: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _known_or_given(self) -> Substance:
        if self.substance not in SUBSTANCES and (
            self.critical_quantity_t is None or self.beta is None
        ):
            known = ", ".join(sorted(SUBSTANCES))
            raise ValueError(
                f"substance {self.substance!r} is not in the built-in GB 18218 table ({known}); "
                "give critical_quantity_t and beta")
        return self

    def inventory(self) -> Inventory:
        """q, Q and β, with table values filling what the config leaves out."""
        facts = SUBSTANCES.get(self.substance)
        q_crit = self.critical_quantity_t or (facts.critical_quantity_t if facts else 0.0)
        beta = self.beta or (facts.beta if facts else 0.0)
        return Inventory(self.quantity_t, q_crit, beta)


class HazardSource(Strict):
    """A production or storage unit identified under GB 18218-2018 (or a dust-risk workshop)."""

    name: str
    unit_type: Literal["storage", "production"]
    category: Literal["hazardous_chemicals", "dust_explosion"] = "hazardous_chemicals"
    exposed_population_500m: int = Field(ge=0)
    substances: list[Substance] = Field(default_factory=list)
    responsible_persons: ResponsiblePersons
    equipment: dict[Identifier, Equipment] = Field(default_factory=dict)

    def grading(self) -> Grading:
        """S, R and level per GB 18218-2018 §4.3."""
        return grade([s.inventory() for s in self.substances],
                     alpha_for_population(self.exposed_population_500m))

    def iter_points(self) -> list[tuple[str, str, Point]]:
        """(equipment id, point id, point) for every point of the source."""
        return [(eid, pid, p) for eid, e in self.equipment.items() for pid, p in e.points.items()]


class Enterprise(Strict):
    """The monitored enterprise and its hazard sources."""

    code: str = Field(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$",
                      description="unified social credit code (统一社会信用代码)")
    name: str
    division: str | None = Field(
        default=None, description="administrative division (GB/T 2260, six digits): "
        "where the enterprise is; required in a deployment of several enterprises")
    industry: str | None = Field(
        default=None, description="industry (GB/T 4754-2017, e.g. C2614); required in a "
        "deployment of several enterprises")
    hazard_sources: dict[Identifier, HazardSource]
    consoles: dict[Identifier, Console] = Field(
        default_factory=dict, description="default: one console 'control_room' for all")

    @field_validator("division", "industry")
    @classmethod
    def _national_code(cls, v: str | None, info: ValidationInfo) -> str | None:
        check = division_problem if info.field_name == "division" else industry_problem
        problem = None if v is None else check(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _unique_point_ids(self) -> Enterprise:
        seen: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        for sid, src in self.hazard_sources.items():
            for eid, pid, _ in src.iter_points():
                where = f"hazard_sources.{sid}.equipment.{eid}.points.{pid}"
                if pid in seen:
                    problems.append((where, f"point id {pid!r} is already used at {seen[pid]}"))
                else:
                    seen[pid] = where
        for cid, console in self.consoles.items():
            problems += [(f"consoles.{cid}.hazard_sources", f"unknown hazard source {s!r}")
                         for s in console.hazard_sources if s not in self.hazard_sources]
        for sid, src in self.hazard_sources.items():
            for eid, pid, p in src.iter_points():
                if p.suppress_when and p.suppress_when.point not in seen:
                    where = f"hazard_sources.{sid}.equipment.{eid}.points.{pid}.suppress_when"
                    problems.append((f"{where}.point",
                                     f"unknown point {p.suppress_when.point!r}"))
                if p.flatline and p.flatline.related:
                    where = f"hazard_sources.{sid}.equipment.{eid}.points.{pid}.flatline.related"
                    problems += [(where, f"unknown point {r!r}") for r in p.flatline.related
                                 if r not in seen]
        if problems:
            raise rule_problems(problems)
        return self

    def console_of(self) -> dict[str, str]:
        """Hazard source id → console id (every source on 'control_room' by default)."""
        out = {sid: "control_room" for sid in self.hazard_sources}
        for cid, console in self.consoles.items():
            out.update({s: cid for s in console.hazard_sources})
        return out

    def points(self) -> dict[str, tuple[str, str, Point]]:
        """Point id → (hazard source id, equipment id, point), in config order."""
        return {pid: (sid, eid, p) for sid, src in self.hazard_sources.items()
                for eid, pid, p in src.iter_points()}


def problems_of(ctx: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The field-level problems carried by a ``plant_rules`` error, if any."""
    if not ctx or "problems" not in ctx:
        return []
    return [(str(f), str(m)) for f, m in ctx["problems"]]
