"""The national codes of an enterprise: GB/T 2260 divisions and GB/T 4754 industries."""

from __future__ import annotations

import pytest

from alerting.codes import division_problem, industry_problem


@pytest.mark.parametrize("code", ["320582", "110101", "320500", "320000", "429004", "820000"])
def test_division_codes_of_gb_t_2260(code: str) -> None:
    assert division_problem(code) is None


@pytest.mark.parametrize(("code", "why"), [
    ("32058", "six digits"), ("3205821", "six digits"), ("32O582", "six digits"),
    ("990101", "99 is not a province-level code"), ("000000", "00 is not a province"),
    ("320082", "needs its prefecture"),
])
def test_what_is_not_a_division_code_says_why(code: str, why: str) -> None:
    assert why in (division_problem(code) or "")


@pytest.mark.parametrize("code", ["C2614", "2614", "C26", "G599", "G5941", "D4411", "T97"])
def test_industry_codes_of_gb_t_4754(code: str) -> None:
    assert industry_problem(code) is None


@pytest.mark.parametrize(("code", "why"), [
    ("B2614", "belongs to section C, not B"), ("C99", "99 is not a division"),
    ("C261456", "section letter A–T and 2–4 digits"), ("Z11", "section letter A–T"),
    ("c2614", "section letter A–T"), ("", "section letter A–T"),
])
def test_what_is_not_an_industry_code_says_why(code: str, why: str) -> None:
    assert why in (industry_problem(code) or "")
