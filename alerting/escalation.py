"""Escalation policies: who is told about an unhandled alarm, and when (pure rules).

A policy is a list of steps, each ``after_s`` seconds after the alarm was annunciated, naming
roles: the operator on shift, the hazard source's three responsible persons (包保: the
operational, technical and main persons) and the regulator. A step fires only while the alarm
is still unhandled (unacknowledged, whether or not its condition persists); acknowledging,
shelving or taking it out of service stops the climb. Policies are chosen per hazard source
and alarm priority, falling back to the enterprise default.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["operator", "operational", "technical", "main", "regulator"]
Channel = Literal["mqtt", "webhook", "email", "file"]
# a ``file`` contact names a file in the notification directory, never a path
FILE_TARGET = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
# Four-colour warning (红橙黄蓝) by alarm priority: 1 most urgent.
WARNING_COLOUR = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}
UNHANDLED_STATES = ("unack", "rtn_unack")
# An alarm counts as handled in the daily report when a person acknowledged it within this;
# the standards give no number (ISA-18.2 leaves it to the alarm philosophy): 5 minutes, the
# site's ``escalation.ack_within_s`` to change it.
ACK_WITHIN_S = 300.0


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
    ack_within_s: float = Field(default=ACK_WITHIN_S, gt=0, le=86_400,
                                description="an alarm acknowledged within this counts as "
                                            "handled in the daily report")

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


class Contact(BaseModel):
    """Where a role is told: an MQTT topic, a webhook URL or an e-mail address."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channel: Channel
    target: str = Field(min_length=1)

    @model_validator(mode="after")
    def _target_fits(self) -> Contact:
        if self.channel == "webhook" and not self.target.startswith(("http://", "https://")):
            raise ValueError(f"webhook target must be an http(s) URL, got {self.target!r}")
        if self.channel == "email" and "@" not in self.target:
            raise ValueError(f"email target must be an address, got {self.target!r}")
        if self.channel == "file" and not re.match(FILE_TARGET, self.target):
            raise ValueError(f"file target must be a file name (letters, digits, _ . -), "
                             f"not a path: {self.target!r}")
        if self.channel == "mqtt" and any(c in self.target for c in "+#"):
            raise ValueError(f"mqtt target must be a topic without wildcards: {self.target!r}")
        return self


class Contacts(BaseModel):
    """Contacts by role, for the whole enterprise or one hazard source."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default: dict[Role, list[Contact]] = Field(default_factory=dict)
    sources: dict[str, dict[Role, list[Contact]]] = Field(default_factory=dict)

    def of(self, source: str, role: Role) -> list[Contact]:
        """Who holds ``role`` for ``source`` (the source's own contacts first)."""
        return self.sources.get(source, {}).get(role) or self.default.get(role, [])
