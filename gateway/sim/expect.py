"""Expected alarm timelines, and a readable diff when a run does not give them.

An expectation names a level on a point and when it must first come, in simulated seconds
since the scenario started, with a tolerance; or that it must never come. In Python they can
be written as text::

    "HH on V101_level at 846s ±30s"         # the first HH within 816..876 s
    "H on V101_level between 600s and 660s"
    "HH on T201_level by 300s"               # any time up to 300 s
    "fault alarm on DC301_dp at 120s"        # exact time ("alarm" is optional)
    "normal fault alarm on DC301_dp by 300s" # with an alarm type: the fault cleared
    "no H on V102_level"

and in a scenario file as ``expect:`` entries (``edge.sim.scenario.Expectation``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from edge.sim.scenario import Expectation
from gateway.sim.kit import RunResult, TimelineRow

_NUM = r"(\d+(?:\.\d+)?)"
_HEAD = r"^(?P<level>[\w-]+)(?:(?: (?P<type>[a-z]+))? alarm)? on (?P<point>[\w.\-/]+)"
_FORMS = [
    ("at", re.compile(_HEAD + rf" at {_NUM}s(?: (?:±|\+-|\+/-) ?{_NUM}s)?$")),
    ("between", re.compile(_HEAD + rf" between {_NUM}s and {_NUM}s$")),
    ("by", re.compile(_HEAD + rf" by {_NUM}s$")),
]


def _window(form: str, a: float, b: float) -> tuple[float, float]:
    """(at, within) of a text form's numbers."""
    if form == "at":
        return a, b
    if form == "between":
        return (a + b) / 2, (b - a) / 2
    return a / 2, a / 2


_NEVER = re.compile(r"^no " + _HEAD[1:] + "$")


def parse_expectation(text: str) -> Expectation:
    """An Expectation from one line of the text form (see the module doc)."""
    t = " ".join(text.split())
    if m := _NEVER.match(t):
        return Expectation(point=m["point"], level=m["level"], type=m["type"],
                           never=True)
    for form, rx in _FORMS:
        if m := rx.match(t):
            nums = [float(g) for g in m.groups()[3:] if g is not None] + [0.0]
            at, within = _window(form, nums[0], nums[1])
            return Expectation(point=m["point"], level=m["level"], type=m["type"],
                               at_s=at, within_s=within)
    raise ValueError(f"cannot read expectation {text!r}; write e.g. 'HH on T101_level at "
                     "300s ±30s', 'H on X between 60s and 90s', 'H on X by 300s' or "
                     "'no H on X'")


def describe(x: Expectation) -> str:
    """The text form of an expectation."""
    kind = f" {x.type} alarm" if x.type else ""
    if x.never:
        return f"no {x.level}{kind} on {x.point}"
    assert x.at_s is not None
    return f"{x.level}{kind} on {x.point} at {x.at_s:g}s ±{x.within_s:g}s"


def first(timeline: Sequence[TimelineRow], x: Expectation) -> TimelineRow | None:
    """The first row that matches the expectation's point, level and type."""
    return next((r for r in timeline if r.point == x.point and r.level == x.level
                 and (x.type is None or r.alarm_type == x.type)), None)


def verdicts(timeline: Sequence[TimelineRow], expected: Sequence[Expectation | str],
             ) -> list[tuple[bool, str]]:
    """(met, explanation) per expectation."""
    out = []
    for item in expected:
        x = parse_expectation(item) if isinstance(item, str) else item
        row = first(timeline, x)
        if x.never:
            out.append((row is None, describe(x) + (f": came at {row.t_s:.1f}s" if row else "")))
            continue
        assert x.at_s is not None
        if row is None:
            out.append((False, describe(x) + ": never came"))
            continue
        off = row.t_s - x.at_s
        ok = abs(off) <= x.within_s + 1e-9
        how = "" if ok else f" ({abs(off):.1f}s {'late' if off > 0 else 'early'})"
        out.append((ok, f"{describe(x)}: first came at {row.t_s:.1f}s{how}"))
    return out


def expect_alarms(result: RunResult | Sequence[TimelineRow],
                  expected: Sequence[Expectation | str]) -> None:
    """Assert that a run's alarm timeline meets every expectation; the AssertionError shows
    each expectation with its verdict and the whole annunciated timeline."""
    timeline = result.timeline() if isinstance(result, RunResult) else list(result)
    checks = verdicts(timeline, expected)
    if all(ok for ok, _ in checks):
        return
    lines = ["alarm timeline does not meet expectations (simulated seconds since start):"]
    lines += [f"  {'ok  ' if ok else 'FAIL'} {text}" for ok, text in checks]
    lines.append("annunciated timeline:")
    lines += [f"  {row}" for row in timeline] or ["  (no alarms at all)"]
    raise AssertionError("\n".join(lines))
