"""The hazard register (隐患台账): its closed loop as pure rules.

An entry is registered (登记), rectified (整改), verified (验收) and closed (销号); a failed
verification sends it back to rectification::

    state                 action          → state                 who may, and what it needs
    registered            start           → rectifying            a major hazard needs the five
                                                                  in place (五到位) first
    rectifying            submit          → pending_verification  the rectification done
    pending_verification  verify_pass     → closed                a verifier and a comment
    pending_verification  verify_fail     → rectifying            a verifier and a comment
    registered,
    rectifying            update_five     (same state)            any of the five fields

Every other (state, action) is refused with the reason. The five in place are measures,
funds, responsible person, deadline and contingency plan. An entry is overdue when it is not
closed after its deadline; major and overdue entries are under supervised listing (挂牌督办).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from alerting.escalation import Role

State = Literal["registered", "rectifying", "pending_verification", "closed"]
Action = Literal["start", "submit", "verify_pass", "verify_fail", "update_five"]
Level = Literal["general", "major"]
Source = Literal["alarm_duration", "alarm_recurrence", "integrity", "inspection"]

STATES: tuple[State, ...] = ("registered", "rectifying", "pending_verification", "closed")
TRANSITIONS: dict[tuple[State, Action], State] = {
    ("registered", "start"): "rectifying",
    ("rectifying", "submit"): "pending_verification",
    ("pending_verification", "verify_pass"): "closed",
    ("pending_verification", "verify_fail"): "rectifying",
    ("registered", "update_five"): "registered",
    ("rectifying", "update_five"): "rectifying",
}
FIVE: tuple[str, ...] = ("measures", "funds_cny", "responsible_person", "deadline_ms",
                         "contingency_plan")


class RegisterError(ValueError):
    """A register change that is not allowed; the text says why."""


@dataclass(frozen=True)
class Five:
    """五到位: what a rectification needs in place (None = not yet)."""

    measures: str | None = None
    funds_cny: float | None = None
    responsible_person: str | None = None
    deadline_ms: int | None = None
    contingency_plan: str | None = None

    def missing(self) -> list[str]:
        """Names of the fields not yet in place."""
        return [f for f in FIVE if getattr(self, f) in (None, "")]


@dataclass(frozen=True)
class Entry:
    """A register entry as the rules see it."""

    state: State
    level: Level
    five: Five = Five()

    def overdue(self, now_ms: int) -> bool:
        """Not closed and past its deadline."""
        d = self.five.deadline_ms
        return self.state != "closed" and d is not None and now_ms > d

    def supervised(self, now_ms: int) -> bool:
        """Under supervised listing (挂牌督办): a major hazard, or overdue, while not closed."""
        return self.state != "closed" and (self.level == "major" or self.overdue(now_ms))


def transition(entry: Entry, action: Action, *, five: Five | None = None,
               verifier: str | None = None, comment: str | None = None) -> Entry:
    """The entry after ``action``, or RegisterError naming what stands in the way."""
    nxt = TRANSITIONS.get((entry.state, action))
    if nxt is None:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == entry.state)
        raise RegisterError(f"cannot {action} an entry that is {entry.state}; allowed: "
                            f"{', '.join(allowed) or 'nothing (closed entries are final)'}")
    if five is not None and action not in ("start", "update_five"):
        raise RegisterError(f"the five in place are given with start or update_five, not "
                            f"with {action}")
    # start may bring the five with it: rectification begins with them in place, one step
    merged = entry.five if five is None else _merge(entry.five, five)
    if action == "update_five":
        if five is None:
            raise RegisterError("update_five needs the five-in-place fields")
        return replace(entry, five=merged)
    if action == "start" and entry.level == "major" and merged.missing():
        raise RegisterError("a major hazard enters rectification only with all five in place "
                            f"(五到位); missing: {', '.join(merged.missing())}")
    if action in ("verify_pass", "verify_fail") and not (verifier and comment):
        raise RegisterError(f"{action} needs the verifier and a comment")
    return replace(entry, state=nxt, five=merged)


def _merge(old: Five, new: Five) -> Five:
    return Five(**{f: getattr(new, f) if getattr(new, f) not in (None, "") else getattr(old, f)
                   for f in FIVE})


OVERDUE_ROLES: tuple[Role, ...] = ("main", "regulator")


class RegisterRules(BaseModel):
    """When alarms become register entries by themselves (none of them: all unset/false)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    unhandled_longer_than_s: float | None = Field(
        default=3600.0, gt=0, description="an alarm nobody handled for this long (escalated)")
    recurrences: int | None = Field(
        default=5, ge=2, description="this many activations of one alarm within the window")
    recurrence_window_s: float = Field(default=86_400.0, gt=0)
    integrity: bool = Field(default=True, description="tamper and flatline alarms")
    overdue_roles: list[Role] = Field(
        default_factory=lambda: list(OVERDUE_ROLES),
        description="told once when an entry passes its deadline unclosed")
