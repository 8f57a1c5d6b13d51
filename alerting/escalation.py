"""Escalation policies: who is told about an unhandled alarm, and when (pure rules).

A policy is a list of steps, each ``after_s`` seconds after the alarm was annunciated, naming
roles: the operator on shift, the hazard source's three responsible persons (包保: the
operational, technical and main persons) and the regulator. A step fires only while the alarm
is still unhandled (unacknowledged, whether or not its condition persists); acknowledging,
shelving or taking it out of service stops the climb. Policies are chosen per hazard source
and alarm priority, falling back to the enterprise default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["operator", "operational", "technical", "main", "regulator"]
UNHANDLED_STATES = ("unack", "rtn_unack")


class Step(BaseModel):
    """One rung of the ladder."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    after_s: float = Field(ge=0, description="seconds after annunciation")
    roles: list[Role] = Field(min_length=1)


class Policy(BaseModel):
    """Steps in time order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Policy:
        times = [s.after_s for s in self.steps]
        if times != sorted(set(times)) or len(set(times)) != len(times):
            raise ValueError(f"steps must have increasing after_s, got {times}")
        return self

    def due(self, annunciated_ms: int, now_ms: int, fired: set[int]) -> list[int]:
        """Indexes of the steps due by ``now_ms`` that have not fired yet."""
        return [i for i, s in enumerate(self.steps)
                if i not in fired and now_ms >= annunciated_ms + s.after_s * 1000]


class EscalationConfig(BaseModel):
    """Policies by alarm priority (1 = most urgent), per hazard source or by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default: dict[int, Policy] = Field(default_factory=dict)
    sources: dict[str, dict[int, Policy]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _priorities(self) -> EscalationConfig:
        for where, table in [("default", self.default),
                             *((f"sources.{k}", v) for k, v in self.sources.items())]:
            bad = [p for p in table if not 1 <= p <= 4]
            if bad:
                raise ValueError(f"{where}: priorities are 1..4, got {bad}")
        return self

    def policy_for(self, source: str, priority: int) -> Policy | None:
        """The policy of an alarm, or None when it does not escalate."""
        return self.sources.get(source, {}).get(priority) or self.default.get(priority)
