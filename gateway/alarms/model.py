"""The one alarm-event model: every outside shape of an alarm event is projected from it.

``AlarmMessage`` is the v1 JSON object published on MQTT (``gateway.alarms.publisher``), the
console's live feed and the API's alarm rows (``gateway.api``), documented in OpenAPI by
its pydantic schema. InfluxDB's ``alarm_event`` lines (``gateway.influx.schema``) and the
database's history rows (``gateway.alarms.escalation``) are built from the same engine event
(``alerting.engine.AlarmEvent``), with the field names below.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from alerting.engine import PRIORITY_NAMES, AlarmEvent


class AlarmMessage(BaseModel):
    """One alarm lifecycle event as the outside world sees it (v1)."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    enterprise: str
    alarm_id: str = Field(description="<point>:<alarm type>, or <vote>:vote, or <console>:flood")
    alarm_type: str = Field(description="process, roc, predictive, fault, stale, flatline, "
                                        "tamper, vote, device, flood")
    point: str | None
    source: str
    equipment: str
    console: str
    kind: str
    ts: int = Field(description="when it happened, Unix ms (the gateway's clock)")
    event: str = Field(description="activate, raise, change, clear, ack, shelve, unshelve, "
                                   "shelve_expired, suppress, unsuppress, remove, return, "
                                   "re-alarm, chattering, chatter_end, condition, flood_start, "
                                   "flood_end; standing: a row of the standing list")
    state: str
    prev_state: str
    level: int = Field(description="the level shown: a latching alarm's (gas, GB/T 50493) "
                                   "highest level reached, until acknowledged and normal")
    level_name: str
    current_level: int = Field(description="the condition's level now (beside level)")
    prev_level: int = Field(description="the condition's level before this event")
    gb50493_level: int | None = Field(description="1 / 2 for gas process alarms, else null")
    priority: int = Field(description="1 emergency … 4 low")
    priority_name: str
    value: float | None
    limit: float | None
    forecast_s: float | None
    predictive: bool = Field(description="true only for trend warnings: never a GB/T 50493 "
                                         "alarm")
    user: str | None
    reason: str | None
    points: list[str] = Field(default_factory=list,
                              description="the points of a device (off line) or vote alarm")
    annunciated: bool = Field(description="false: recorded, not annunciated: shelved, "
                                          "suppressed, out of service, chattering, or not "
                                          "above the level already annunciated or "
                                          "acknowledged")
    toxic: bool

    @classmethod
    def of(cls, enterprise: str, e: AlarmEvent, limit: float | None = None) -> AlarmMessage:
        """The message of an engine event (``limit`` fills in one the event does not carry).

        Built without validation: the engine's events are trusted and this is on the alarm
        path."""
        return cls.model_construct(
            v=1, enterprise=enterprise, alarm_id=e.alarm_id, alarm_type=e.alarm_type,
            point=e.point, source=e.source, equipment=e.equipment, console=e.console,
            kind=e.kind, ts=e.ts, event=e.event, state=e.state, prev_state=e.prev_state,
            level=e.level, level_name=e.level_name, current_level=e.current_level,
            prev_level=e.prev_level,
            gb50493_level=e.gb50493_level, priority=e.priority,
            priority_name=PRIORITY_NAMES[e.priority], value=e.value,
            limit=e.limit if e.limit is not None else limit, forecast_s=e.forecast_s,
            predictive=e.alarm_type == "predictive", user=e.user, reason=e.reason,
            points=list(e.members), annunciated=e.annunciated, toxic=e.toxic)
