"""``/alarms`` and ``/escalations``: the standing alarms, operator actions, history.

Actions go through the core's own methods (the engine's only owner, on the loop); the audit
record is then appended off the loop, so a slow database never stalls ingest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from alerting.engine import AlarmEvent
from alerting.lifecycle import InvalidTransitionError
from gateway.alarms.escalation import escalation_state
from gateway.alarms.model import AlarmMessage
from gateway.api.auth import ApiContext, Ctx, errors, may
from gateway.api.models import CommentOut, HistoryRow, Occurrence
from gateway.settings import ApiUser
from gateway.store import audit
from gateway.store.models import AlarmHistory

router = APIRouter(tags=["alarms"])
LIMIT_OF = {"HH": "hihi", "H": "hi", "L": "lo", "LL": "lolo"}


class Shelve(BaseModel):
    minutes: float = Field(gt=0, le=24 * 60)
    reason: str = Field(min_length=1)


class OutOfService(BaseModel):
    reason: str = Field(min_length=1)


class Ack(BaseModel):
    comment: str | None = None


class Comment(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


def standing_limit(ctx: ApiContext, e: AlarmEvent) -> float | None:
    """A standing alarm's event carries no limit: a process alarm's is its level's."""
    name = LIMIT_OF.get(e.level_name) if e.alarm_type == "process" else None
    if name is None or e.point is None:
        return None
    tb = ctx.core.table
    i = tb.position.get(e.point, -1)
    value = float(getattr(tb, name)[i]) if i >= 0 else float("nan")
    return value if value == value else None


def _audit(ctx: ApiContext, actor: str, action: str, subject: str, detail: dict[str, Any],
           ts_ms: int) -> int:
    with ctx.register.db.session.begin() as s:
        return audit.append(s, actor, action, subject, detail, ts_ms).ts_ms


async def _act(ctx: ApiContext, u: ApiUser, alarm_id: str, action: str,
               detail: dict[str, Any], do: Callable[[], Awaitable[AlarmEvent]],
               ) -> AlarmMessage:
    try:
        event = await do()
    except InvalidTransitionError as exc:
        status = 404 if str(exc).startswith("unknown alarm") else 409
        raise HTTPException(status, str(exc)) from None
    await asyncio.to_thread(_audit, ctx, u.name, f"alarm.{action}", f"alarm/{alarm_id}",
                            detail, event.ts)
    return AlarmMessage.of(ctx.core.enterprise, event)


@router.get("/alarms", responses=errors())
async def alarms(ctx: Ctx, _: Annotated[ApiUser, may("read")], source: str | None = None,
                 state: str | None = None) -> list[AlarmMessage]:
    """Alarms not in NORMAL, in display order (priority, toxic first, severity, age)."""
    return [AlarmMessage.of(ctx.core.enterprise, e, standing_limit(ctx, e))
            for e in ctx.core.standing()
            if (source is None or e.source == source) and (state is None or e.state == state)]


@router.post("/alarms/{alarm_id}/acknowledge", responses=errors(404, 409))
async def acknowledge(ctx: Ctx, alarm_id: str, body: Ack,
                      u: Annotated[ApiUser, may("acknowledge")]) -> AlarmMessage:
    """Acknowledge an unacknowledged alarm."""
    return await _act(ctx, u, alarm_id, "acknowledge", {"comment": body.comment},
                      lambda: ctx.core.acknowledge(alarm_id, u.name, body.comment))


@router.post("/alarms/{alarm_id}/shelve", responses=errors(404, 409))
async def shelve(ctx: Ctx, alarm_id: str, body: Shelve,
                 u: Annotated[ApiUser, may("shelve")]) -> AlarmMessage:
    """Shelve for a while (at most 24 h); still evaluated and recorded."""
    until = ctx.now_ms() + int(body.minutes * 60_000)
    return await _act(ctx, u, alarm_id, "shelve", {"reason": body.reason, "until_ms": until},
                      lambda: ctx.core.shelve(alarm_id, u.name, body.reason, body.minutes))


@router.post("/alarms/{alarm_id}/out-of-service", responses=errors(404, 409))
async def out_of_service(ctx: Ctx, alarm_id: str, body: OutOfService,
                         u: Annotated[ApiUser, may("out_of_service")]) -> AlarmMessage:
    """Take an alarm out of service (person and reason recorded)."""
    return await _act(ctx, u, alarm_id, "out_of_service", {"reason": body.reason},
                      lambda: ctx.core.remove_from_service(alarm_id, u.name, body.reason))


@router.post("/alarms/{alarm_id}/comment", status_code=201, responses=errors(404))
async def comment(ctx: Ctx, alarm_id: str, body: Comment,
                  u: Annotated[ApiUser, may("comment")]) -> CommentOut:
    """Comment on an alarm (audit-logged)."""
    try:
        now = ctx.core.check_alarm(alarm_id)
    except InvalidTransitionError as exc:
        raise HTTPException(404, str(exc)) from None
    ts = await asyncio.to_thread(_audit, ctx, u.name, "alarm.comment", f"alarm/{alarm_id}",
                                 {"text": body.text}, now)
    return CommentOut(alarm_id=alarm_id, user=u.name, text=body.text, ts=ts)


@router.get("/alarms/{alarm_id}/history", responses=errors())
def history(ctx: Ctx, alarm_id: str, _: Annotated[ApiUser, may("read")]) -> list[HistoryRow]:
    """Every lifecycle event of an alarm, oldest first (runs in a worker thread: SQL only)."""
    with ctx.register.db.session() as s:
        return [HistoryRow.model_validate(r) for r in s.execute(
            select(AlarmHistory).where(AlarmHistory.alarm_id == alarm_id)
            .order_by(AlarmHistory.id)).scalars()]


@router.get("/escalations", responses=errors())
def escalations(ctx: Ctx, _: Annotated[ApiUser, may("read")]) -> list[Occurrence]:
    """Unhandled occurrences and the steps fired (SQL only, in a worker thread)."""
    return [Occurrence.model_validate(o) for o in escalation_state(ctx.register.db)]
