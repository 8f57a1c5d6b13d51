from __future__ import annotations

import pytest

from alerting.grading import Inventory, alpha_for_population, grade, level_for_r
from gateway.site import load_site


def test_worked_example_chlorine_is_level_three() -> None:
    # domain.md §3: 20 t Cl2 alone, α = 2 → R = 2 × 4 × 20/5 = 32 → 三级.
    g = grade([Inventory(20, 5, 4)], alpha=2.0)
    assert g.s == pytest.approx(4.0)
    assert g.r == pytest.approx(32.0)
    assert g.is_major and g.level == "三级"


def test_worked_example_lpg_is_level_four() -> None:
    # domain.md §3: 100 t LPG, α = 1 → R = 1 × 1.5 × 100/50 = 3 → 四级.
    g = grade([Inventory(100, 50, 1.5)], alpha=1.0)
    assert g.r == pytest.approx(3.0)
    assert g.level == "四级"


def test_below_critical_quantity_is_not_major() -> None:
    g = grade([Inventory(2, 5, 4), Inventory(10, 50, 1.5)], alpha=2.0)
    assert g.s == pytest.approx(0.6)
    assert not g.is_major and g.level is None


@pytest.mark.parametrize(("people", "alpha"), [
    (0, 0.5), (1, 1.0), (29, 1.0), (30, 1.2), (49, 1.2), (50, 1.5), (99, 1.5), (100, 2.0)])
def test_alpha_table_boundaries(people: int, alpha: float) -> None:
    assert alpha_for_population(people) == alpha


@pytest.mark.parametrize(("r", "level"), [
    (100, "一级"), (99.99, "二级"), (50, "二级"), (49.9, "三级"), (10, "三级"), (9.9, "四级")])
def test_level_boundaries(r: float, level: str) -> None:
    assert level_for_r(r) == level


def test_demo_plant_grades(demo_config_path: object) -> None:
    site = load_site(str(demo_config_path))
    lpg = site.enterprise.hazard_sources["lpg_farm"].grading()
    cl2 = site.enterprise.hazard_sources["chlorine_store"].grading()
    assert (lpg.s, lpg.r, lpg.level) == (32, 96, "二级")
    assert (cl2.s, cl2.r, cl2.level) == (10, 60, "二级")
    assert not site.enterprise.hazard_sources["al_polishing"].grading().is_major
