"""Who may shelve which alarm, for how long, how often (pure rules; the site's ``shelving:``).

Shelving hides an annunciated alarm from the operator for a while (ISA-18.2 / IEC 62682
"shelved"; EEMUA 191 treats it as a controlled, time-limited measure). The defaults follow
domain.md §6: an operator may not shelve an emergency-priority alarm nor a GB/T 50493
second-level gas alarm (those reach the regulator); a safety manager may, for at most one
shift; nobody for more than 8 h; one alarm at most 3 times per Beijing day. Each refusal
says which rule refused it. The lifecycle itself refuses to shelve an alarm that is not
annunciated (``alerting.lifecycle``), and a shelved alarm whose condition rises above the
level it was shelved at is annunciated again.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ShelvingRole = Literal["operator", "safety_manager", "admin"]
DAY_MS = 86_400_000
BEIJING_OFFSET_MS = 8 * 3_600_000


def _default_roles() -> dict[int, list[ShelvingRole]]:
    return {1: ["safety_manager"], 2: ["operator", "safety_manager"],
            3: ["operator", "safety_manager"], 4: ["operator", "safety_manager"]}


class ShelvingPolicy(BaseModel):
    """The site's shelving rules (``shelving:`` in the site file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_minutes: float = Field(default=480, gt=0, le=7 * 24 * 60,
                               description="the longest any alarm may be shelved (8 h)")
    per_day: int = Field(default=3, ge=1,
                         description="shelvings of one alarm per Beijing day")
    # who may shelve an alarm of each priority (1 emergency … 4 low); GB/T 50493 L2 alarms
    # count as emergency whatever their configured priority
    roles: dict[int, list[ShelvingRole]] = Field(
        default_factory=_default_roles,
        description="roles allowed to shelve, by alarm priority")
    critical_max_minutes: float = Field(
        default=480, gt=0, description="the longest an emergency or L2 alarm may be shelved "
                                       "(one shift)")

    @field_validator("roles")
    @classmethod
    def _priorities(cls, v: dict[int, list[ShelvingRole]]) -> dict[int, list[ShelvingRole]]:
        bad = sorted(p for p in v if not 1 <= p <= 4)
        if bad:
            raise ValueError(f"priorities are 1..4, got {bad}")
        return v

    def refusal(self, role: str, priority: int, gb50493_level: int | None, minutes: float,
                shelved_today: int) -> str | None:
        """Why this shelving is not allowed, or None when it is."""
        critical = priority == 1 or gb50493_level == 2
        allowed = self.roles.get(1 if critical else priority, [])
        what = ("a GB/T 50493 second-level alarm" if gb50493_level == 2
                else f"a priority-{priority} alarm")
        if role not in allowed:
            return f"role {role} may not shelve {what} (allowed: {', '.join(allowed) or 'none'})"
        cap = min(self.max_minutes, self.critical_max_minutes if critical else self.max_minutes)
        if minutes > cap:
            return f"{what} may be shelved for at most {cap:g} minutes"
        if shelved_today >= self.per_day:
            return f"already shelved {shelved_today} times today (at most {self.per_day})"
        return None


def beijing_day_start(ts_ms: int) -> int:
    """Start (Unix ms) of the Beijing day holding ``ts_ms``."""
    return (ts_ms + BEIJING_OFFSET_MS) // DAY_MS * DAY_MS - BEIJING_OFFSET_MS
