"""``/shift-log``: shift handovers (交接班记录) — who was on duty, who takes over, the note, and
the alarms standing at that moment, recorded by the gateway (not typed), with an audit
record. ``/console/silence``: an operator silencing the console's alarm sound, logged the
same way (the sound is per browser; who silenced it, and when, is the plant's record).
Their SQL runs in worker threads, off the event loop."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from gateway.api.auth import ApiContext, Ctx, errors, may
from gateway.api.models import Paragraph, Reason
from gateway.settings import ApiUser
from gateway.store import audit
from gateway.store.models import ShiftNote

router = APIRouter(tags=["shift"])


class Handover(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_duty: Reason = Field(description="who was on duty (names)")
    taking_over: Reason | None = Field(default=None, description="who takes over")
    note: Paragraph


class StandingAtHandover(BaseModel):
    alarm_id: str
    state: str
    level_name: str
    priority: int


class ShiftNoteOut(BaseModel):
    """One handover as recorded."""

    id: int
    ts_ms: int
    author: str
    on_duty: str
    taking_over: str | None
    note: str
    standing: list[StandingAtHandover]


class Silence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alarms: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=1000, description="the alarms sounding when silenced")


def _out(row: ShiftNote) -> ShiftNoteOut:
    return ShiftNoteOut(id=row.id, ts_ms=row.ts_ms, author=row.author, on_duty=row.on_duty,
                        taking_over=row.taking_over, note=row.note,
                        standing=[StandingAtHandover(**x) for x in json.loads(row.standing)])


@router.get("/shift-log", responses=errors())
def shift_log(ctx: Ctx, _: Annotated[ApiUser, may("read")],
              limit: int = Query(default=20, ge=1, le=500)) -> list[ShiftNoteOut]:
    """The latest handovers, newest first."""
    with ctx.register.db.session() as s:
        rows = s.scalars(select(ShiftNote).where(ShiftNote.enterprise == ctx.core.enterprise)
                         .order_by(ShiftNote.ts_ms.desc(), ShiftNote.id.desc())
                         .limit(limit)).all()
    return [_out(r) for r in rows]


def _record(ctx: ApiContext, u: ApiUser, body: Handover, standing: list[StandingAtHandover],
            now: int) -> ShiftNoteOut:
    with ctx.register.db.session.begin() as s:
        row = ShiftNote(enterprise=ctx.core.enterprise, ts_ms=now, author=u.name,
                        on_duty=body.on_duty, taking_over=body.taking_over, note=body.note,
                        standing=json.dumps([x.model_dump() for x in standing]))
        s.add(row)
        s.flush()
        audit.append(s, u.name, "shift.handover", f"shift/{row.id}",
                     {"on_duty": body.on_duty, "taking_over": body.taking_over,
                      "standing": len(standing)}, now)
        return _out(row)


@router.post("/shift-log", status_code=201, responses=errors())
async def handover(ctx: Ctx, body: Handover,
                   u: Annotated[ApiUser, may("shift_log")]) -> ShiftNoteOut:
    """Record a handover; the alarms standing now are recorded with it."""
    standing = [StandingAtHandover(alarm_id=e.alarm_id, state=e.state,
                                   level_name=e.level_name, priority=e.priority)
                for e in ctx.core.standing()]           # on the loop: the engine's owner
    return await asyncio.to_thread(_record, ctx, u, body, standing, ctx.now_ms())


def _silenced(ctx: ApiContext, u: ApiUser, alarms: list[str], now: int) -> None:
    with ctx.register.db.session.begin() as s:
        audit.append(s, u.name, "console.silence", "console/sound", {"alarms": alarms}, now)


class Silenced(BaseModel):
    """The silence as recorded."""

    silenced: int = Field(description="alarms that were sounding")
    ts_ms: int


@router.post("/console/silence", responses=errors())
async def silence(ctx: Ctx, body: Silence, u: Annotated[ApiUser, may("read")]) -> Silenced:
    """Record that this person silenced the console's alarm sound (the audit log says who,
    when and over which alarms)."""
    now = ctx.now_ms()
    await asyncio.to_thread(_silenced, ctx, u, body.alarms, now)
    return Silenced(silenced=len(body.alarms), ts_ms=now)
