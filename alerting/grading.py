"""GB 18218-2018 identification (S = Σ q/Q) and grading (R = α Σ β q/Q) of hazard sources.

Tables from domain.md §3 (Annex 1 of 原安监总局令第40号, adopted by GB 18218-2018 §4.3).
Values not in these tables must be given in the configuration, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HazardLevel = Literal["一级", "二级", "三级", "四级"]


@dataclass(frozen=True, slots=True)
class SubstanceFacts:
    """Critical quantity Q (t) and correction factor β of one named substance."""

    critical_quantity_t: float
    beta: float


# Q from GB 18218-2018 Table 1; β from the 令第40号 toxic-gas table or the class factor
# (flammable gas 1.5, other 1). Names are the keys used in config files.
SUBSTANCES: dict[str, SubstanceFacts] = {
    "ammonia": SubstanceFacts(10, 2),
    "chlorine": SubstanceFacts(5, 4),
    "hydrogen_sulfide": SubstanceFacts(5, 5),
    "hydrogen": SubstanceFacts(5, 1.5),
    "methane": SubstanceFacts(50, 1.5),
    "lpg": SubstanceFacts(50, 1.5),
    "gasoline": SubstanceFacts(200, 1),
    "acetylene": SubstanceFacts(1, 1.5),
    "ethylene_oxide": SubstanceFacts(10, 2),
    "phosgene": SubstanceFacts(0.3, 20),
    "hydrogen_cyanide": SubstanceFacts(1, 10),
    "sulfur_dioxide": SubstanceFacts(20, 2),
    "benzene": SubstanceFacts(50, 1),
    "methanol": SubstanceFacts(500, 1),
    "toluene": SubstanceFacts(500, 1),
}


def alpha_for_population(people_within_500m: int) -> float:
    """Correction factor α for the exposed population within 500 m of the boundary."""
    if people_within_500m < 0:
        raise ValueError("population cannot be negative")
    if people_within_500m >= 100:
        return 2.0
    if people_within_500m >= 50:
        return 1.5
    if people_within_500m >= 30:
        return 1.2
    if people_within_500m >= 1:
        return 1.0
    return 0.5


@dataclass(frozen=True, slots=True)
class Inventory:
    """Actual quantity q of a substance held in one unit, with its Q and β."""

    quantity_t: float
    critical_quantity_t: float
    beta: float


@dataclass(frozen=True, slots=True)
class Grading:
    """The outcome of identification and grading for one unit."""

    s: float
    r: float
    is_major: bool
    level: HazardLevel | None


def level_for_r(r: float) -> HazardLevel:
    """GB 18218-2018 §4.3 level for a given R."""
    if r >= 100:
        return "一级"
    if r >= 50:
        return "二级"
    if r >= 10:
        return "三级"
    return "四级"


def grade(inventory: list[Inventory], alpha: float) -> Grading:
    """Identify (S ≥ 1) and grade (R) a unit; a unit that is not major has no level."""
    s = sum(i.quantity_t / i.critical_quantity_t for i in inventory)
    r = alpha * sum(i.beta * i.quantity_t / i.critical_quantity_t for i in inventory)
    major = s >= 1.0
    return Grading(s=s, r=r, is_major=major, level=level_for_r(r) if major else None)
