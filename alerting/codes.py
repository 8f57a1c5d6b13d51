"""The national codes an enterprise carries: its administrative division (GB/T 2260) and its
industry (GB/T 4754-2017). Checked for form and for the parts that are fixed: a division's
province (the 34 province-level codes) and an industry class's section letter against its
division digits. Whether a county code exists this year is not checked (the table changes
every year; the regulator's platform holds it)."""

from __future__ import annotations

import re

# GB/T 2260 province-level divisions (the first two digits of every division code)
PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82"})

# GB/T 4754-2017: each section (门类) letter and the divisions (大类, two digits) it holds
SECTIONS = {"A": (1, 5), "B": (6, 12), "C": (13, 43), "D": (44, 46), "E": (47, 50),
            "F": (51, 52), "G": (53, 60), "H": (61, 62), "I": (63, 65), "J": (66, 69),
            "K": (70, 70), "L": (71, 72), "M": (73, 75), "N": (76, 79), "O": (80, 82),
            "P": (83, 83), "Q": (84, 85), "R": (86, 90), "S": (91, 96), "T": (97, 97)}

_DIVISION = re.compile(r"[0-9]{6}")
_INDUSTRY = re.compile(r"([A-T])?([0-9]{2})([0-9]{1,2})?")


def division_problem(code: str) -> str | None:
    """Why ``code`` is not a GB/T 2260 division code, or None."""
    if not _DIVISION.fullmatch(code):
        return f"{code!r} is not a GB/T 2260 division code (six digits, e.g. 320582)"
    if code[:2] not in PROVINCES:
        return f"{code!r}: {code[:2]} is not a province-level code of GB/T 2260"
    if code[2:4] == "00" and code[4:] != "00":
        return f"{code!r}: a county code needs its prefecture (digits 3–4 are 00)"
    return None


def industry_problem(code: str) -> str | None:
    """Why ``code`` is not a GB/T 4754-2017 industry code, or None: a division (2 digits),
    group (3) or class (4), optionally after its section letter (e.g. C2614, 2614, G59)."""
    m = _INDUSTRY.fullmatch(code)
    if m is None:
        return (f"{code!r} is not a GB/T 4754 industry code (a section letter A–T and 2–4 "
                "digits, e.g. C2614)")
    section, division = m.group(1), int(m.group(2))
    owner = next((s for s, (lo, hi) in SECTIONS.items() if lo <= division <= hi), None)
    if owner is None:
        return f"{code!r}: {m.group(2)} is not a division of GB/T 4754-2017"
    if section is not None and section != owner:
        return f"{code!r}: division {m.group(2)} belongs to section {owner}, not {section}"
    return None
