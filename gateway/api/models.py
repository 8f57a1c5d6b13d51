"""Response bodies of the API, so that ``/openapi.json`` documents every response.

Alarm rows are ``gateway.alarms.model.AlarmMessage``; stored rows are read from their
SQLAlchemy objects (``from_attributes``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _no_controls(v: str, allowed: str) -> str:
    bad = next((c for c in v if (ord(c) < 32 and c not in allowed) or 127 <= ord(c) < 160),
               None)
    if bad is not None:
        raise ValueError(f"control character U+{ord(bad):04X} is not allowed")
    if not v.strip():
        raise ValueError("must not be blank")
    return v


def _line(v: str) -> str:
    return _no_controls(v, "")


def _para(v: str) -> str:
    return _no_controls(v, "\t\n\r")


# What people type, checked before anything changes: no control characters (a NUL byte was a
# 500 on PostgreSQL after the alarm had been shelved), not blank, no longer than the column
# (a longer one was a 500 there too).
Ident = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_line)]
Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_line)]
Title = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_line)]
Reason = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_line)]
Paragraph = Annotated[str, Field(min_length=1, max_length=10_000), AfterValidator(_para)]
# a register entry's id: an integer column (a larger one was a 500 on PostgreSQL)
EntryId = Annotated[int, Path(ge=1, le=2_147_483_647,
                              description="a register entry's id")]
CommentText = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_para)]


def _para_or_empty(v: str) -> str:
    return v if v == "" else _para(v)


# a text that may be left empty (a form's optional field)
OptionalText = Annotated[str, Field(max_length=10_000), AfterValidator(_para_or_empty)]


class Stored(BaseModel):
    """A row read from the database."""

    model_config = ConfigDict(from_attributes=True)


class HistoryRow(Stored):
    """One lifecycle event of an alarm, as stored."""

    id: int
    alarm_id: str
    ts_ms: int
    event: str
    from_state: str
    to_state: str
    level_name: str
    priority: int
    value: float | None
    limit: float | None
    user: str | None
    reason: str | None


class CommentOut(BaseModel):
    """A comment on an alarm, as recorded in the audit log."""

    alarm_id: str
    user: str
    text: str
    ts: int


class FiredStep(BaseModel):
    """An escalation step that fired."""

    step: int
    roles: list[str]
    fired_ms: int


class Occurrence(BaseModel):
    """An unhandled alarm occurrence with the escalation steps fired so far."""

    alarm_id: str
    annunciated_ms: int
    source: str
    priority: int
    level_name: str
    state: str
    steps: list[FiredStep]


class EntryOut(Stored):
    """A hazard register entry (隐患) with its five in place (五到位)."""

    id: int
    enterprise: str
    hazard_source: str
    point: str | None
    title: str
    description: str
    level: str
    source: str
    state: str
    measures: str | None
    funds_cny: float | None
    responsible_person: str | None
    deadline_ms: int | None
    contingency_plan: str | None
    evidence: str = Field(description="JSON: the alarm ids and the point's recent samples")
    created_ms: int
    created_by: str
    updated_ms: int
    closed_ms: int | None
    listed_ms: int | None = Field(description="挂牌督办 by a regulator")
    listed_by: str | None
    supervised: bool = Field(default=False, description="under supervised listing (挂牌督办) "
                                                        "now: open and major, overdue, or "
                                                        "listed by a regulator (as the "
                                                        "report counts it)")


class TransitionOut(Stored):
    """One step of an entry through its closed loop."""

    id: int
    entry_id: int
    ts_ms: int
    actor: str
    action: str
    from_state: str
    to_state: str
    comment: str | None
    verifier: str | None = Field(default=None, description="who verified, as the actor said")


class EntryWithHistory(EntryOut):
    """An entry and every transition it went through."""

    transitions: list[TransitionOut]


class StatisticRow(BaseModel):
    """Entries of one hazard source, level and state."""

    hazard_source: str
    level: str
    state: str
    count: int


class ReportPoints(BaseModel):
    total: int
    online: int | None = Field(description="points with a good reading that day (null: "
                                           "unknown without a v1 InfluxDB)")
    online_rate: float | None


class ReportAlarms(BaseModel):
    """Alarm figures of the day (definitions: ``gateway.store.report``)."""

    count: int = Field(description="occurrences annunciated that day (one per activation)")
    acknowledged_in_time: int = Field(description="acknowledged by a person within "
                                                  "ack_within_s")
    acknowledged_late: int = Field(description="acknowledged later, before the day ended")
    self_cleared: int = Field(description="back to normal by itself, never acknowledged")
    shelved_or_removed: int = Field(description="shelved, suppressed or out of service "
                                                "before an acknowledgement")
    unhandled: int = Field(description="still unacknowledged when the day ended")
    handled: int = Field(description="= acknowledged_in_time")
    handling_rate: float | None = Field(description="handled / count; null when there were "
                                                    "no alarms (nothing to rate)")
    ack_within_s: float
    notified: int = Field(description="occurrences for which any escalation step fired")
    escalated: int = Field(description="occurrences for which a step beyond the first "
                                       "(index ≥ 1) fired: past the first responders")


class ReportHazards(BaseModel):
    open: int
    overdue: int
    major_open: int
    supervised: int
    closed: int


class Report(BaseModel):
    """The daily regulator report of one enterprise (a Beijing-time day)."""

    enterprise: str
    day: str
    points: ReportPoints
    alarms: ReportAlarms
    hazards: ReportHazards


class LoopState(BaseModel):
    """One supervised loop (``edge.supervise.LoopHealth``)."""

    name: str
    state: Literal["starting", "running", "failing", "stopped"]
    iterations: int
    failures: int = Field(description="failed iterations since start")
    streak: int = Field(description="failed iterations in a row, now")
    last_ok_ms: int | None
    last_error: str | None
    last_error_ms: int | None


class DeadLetter(BaseModel):
    """A message the ingest refused (the newest 20 are kept)."""

    topic: str
    kind: str = Field(description="why, one of gateway.stream.boundary.REASONS")
    reason: str
    sample: str = Field(description="its first 256 bytes")
    ts_ms: int | None = None


class DeadLetters(BaseModel):
    """Refused messages: counts by reason since start, and the newest ones."""

    refused: dict[str, int]
    dropped_readings: dict[str, int]
    newest: list[DeadLetter]


class HealthStatus(BaseModel):
    """Without a token: only whether the gateway is ok."""

    status: Literal["ok", "degraded"] = Field(
        description="degraded: at least one loop is failing now, or a notification was "
                    "given up")


class Health(BaseModel):
    """The running gateway's counters and its loops (with a token)."""

    status: Literal["ok", "degraded"] = Field(
        description="degraded: at least one loop is failing now (see loops), or a "
                    "notification was given up (notifications_failed)")
    failed_token_attempts: int = Field(default=0, description="requests refused for a "
                                                              "wrong token since start")
    messages: int
    readings: int
    malformed_messages: int
    alarm_events: int
    notifications_failed: int = Field(default=0, description="notifications given up for "
                                      "good (outbox.failed_ms): someone was not told")
    pending_points: int
    console_streams: int | None = Field(default=None, description="open console streams")
    console_resyncs: int | None = Field(
        default=None, description="consoles that fell behind and were told to reload")
    loops: dict[str, LoopState] = Field(default_factory=dict,
                                        description="every supervised loop and alarm sink")


class Me(BaseModel):
    """Who the token is, and what the role may do."""

    name: str
    role: str
    may: list[str]
    enterprise: str
    sources: list[str]


class PointView(BaseModel):
    """A point as people read it: name, unit, where it is, its limits."""

    name: str
    unit: str
    kind: str
    source: str
    equipment: str
    device: str | None = Field(description="<edge>/<device> that reads it, if any")
    limits: dict[str, float] = Field(description="lolo, lo, hi, hihi; roc_rise and roc_fall "
                                                 "(units per minute), where configured")


class SourceView(BaseModel):
    """A hazard source: its name and GB 18218 level (none: not a major hazard source)."""

    id: str
    name: str
    level: str | None


class SiteView(BaseModel):
    """The plant as the console shows it: names instead of ids, units."""

    enterprise: str
    name: str
    sources: list[SourceView]
    equipment: dict[str, str]
    points: dict[str, PointView]


class PointTrend(BaseModel):
    """A point's limits and recent samples."""

    model_config = ConfigDict(populate_by_name=True)

    point: str
    kind: str
    source: str
    equipment: str
    limits: dict[str, float]
    unit: str = ""
    now_ms: int = Field(default=0, description="the gateway's clock when answered")
    from_: Literal["influxdb", "engine"] = Field(alias="from")
    samples: list[tuple[int, float]]
