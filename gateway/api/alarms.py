"""``/alarms`` and ``/escalations``: the standing alarms, operator actions, history.

Actions go through the core's own methods (the engine's only owner, on the loop), each with
its audit record and history row written in one transaction under the core's step lock: the
action happens with its records or not at all (ingest waits for that one small transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from alerting.engine import AlarmEvent
from alerting.lifecycle import InvalidTransitionError
from alerting.shelving import beijing_day_start
from gateway.alarms.escalation import escalation_state, record_events
from gateway.alarms.model import AlarmMessage
from gateway.api.auth import ApiContext, Ctx, errors, may
from gateway.api.models import CommentOut, CommentText, HistoryRow, Occurrence, Reason
from gateway.settings import ApiUser
from gateway.store import audit
from gateway.store.models import AlarmHistory, AuditRecord, ours
from gateway.stream.core import Record

router = APIRouter(tags=["alarms"])
LIMIT_OF = {"HH": "hihi", "H": "hi", "L": "lo", "LL": "lolo"}


class Shelve(BaseModel):
    minutes: float = Field(gt=0, le=7 * 24 * 60, allow_inf_nan=False,
                           description="how long; the site's shelving policy caps it "
                                       "(default 8 h, one shift for emergency and L2 alarms)")
    reason: Reason


class OutOfService(BaseModel):
    reason: Reason


class Ack(BaseModel):
    comment: Reason | None = None


class Comment(BaseModel):
    text: CommentText


def standing_limit(ctx: ApiContext, e: AlarmEvent) -> float | None:
    """A standing alarm's event carries no limit: a process alarm's is its level's, a rate
    alarm's its rule's (units per minute, as configured; the table keeps them per second),
    a predictive warning's the limit it heads for."""
    if e.point is None:
        return None
    tb = ctx.core.table
    i = tb.position.get(e.point, -1)
    if i < 0:
        return None
    if e.alarm_type == "process":
        name = LIMIT_OF.get(e.level_name)
    elif e.alarm_type == "roc":
        name = "roc_fall" if e.level < 0 else "roc_rise"
    elif e.alarm_type == "predictive":      # the nearest limit beyond the value now
        v = e.value if e.value is not None else float("nan")
        if e.level < 0:
            name = "lo" if v > float(tb.lo[i]) else "lolo"
        else:
            name = "hi" if v < float(tb.hi[i]) else "hihi"
    else:
        name = None
    if name is None:
        return None
    value = float(getattr(tb, name)[i]) * (60.0 if name.startswith("roc") else 1.0)
    return value if value == value else None


def _audit(ctx: ApiContext, actor: str, action: str, subject: str, detail: dict[str, Any],
           ts_ms: int) -> int:
    with ctx.register.db.session.begin() as s:
        return audit.append(s, actor, action, subject, detail, ts_ms).ts_ms


class PolicyRefusalError(InvalidTransitionError):
    """Not allowed by the site's policy (403)."""


async def _act(ctx: ApiContext, u: ApiUser, alarm_id: str, action: str,
               detail: dict[str, Any], do: Callable[[Record], Awaitable[AlarmEvent]],
               ) -> AlarmMessage:
    """Run an action with its audit record and history row in one transaction: it happens
    with them or not at all (a failed write undoes the change and answers 500)."""
    def record(event: AlarmEvent) -> None:
        with ctx.register.db.session.begin() as s:
            audit.append(s, u.name, f"alarm.{action}", f"alarm/{alarm_id}", detail, event.ts)
            record_events(s, [event], ctx.core.enterprise)
    try:
        event = await do(record)
    except PolicyRefusalError as exc:
        raise HTTPException(403, str(exc)) from None
    except InvalidTransitionError as exc:
        status = 404 if str(exc).startswith("unknown alarm") else 409
        raise HTTPException(status, str(exc)) from None
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
    """Acknowledge an unacknowledged alarm (it holds for the level acknowledged and below)."""
    return await _act(ctx, u, alarm_id, "acknowledge", {"comment": body.comment},
                      lambda rec: ctx.core.acknowledge(alarm_id, u.name, body.comment,
                                                       record=rec))


def _shelved_today(ctx: ApiContext, alarm_id: str, now_ms: int) -> int:
    with ctx.register.db.session() as s:
        return int(s.execute(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.action == "alarm.shelve", AuditRecord.subject == f"alarm/{alarm_id}",
            AuditRecord.ts_ms >= beijing_day_start(now_ms))).scalar_one())


@router.post("/alarms/{alarm_id}/shelve", responses=errors(403, 404, 409))
async def shelve(ctx: Ctx, alarm_id: str, body: Shelve,
                 u: Annotated[ApiUser, may("shelve")]) -> AlarmMessage:
    """Shelve an annunciated alarm for a while; still evaluated and recorded, and annunciated
    again if it worsens. The site's shelving policy decides who may shelve which priority,
    for how long and how often a day (403 with the rule that refused)."""
    now = ctx.now_ms()
    until = now + int(body.minutes * 60_000)
    today = await asyncio.to_thread(_shelved_today, ctx, alarm_id, now)

    def check(e: AlarmEvent) -> None:
        why = ctx.core.shelving.refusal(u.role, e.priority, e.gb50493_level, body.minutes,
                                        today)
        if why is not None:
            raise PolicyRefusalError(f"{alarm_id}: {why}")
    return await _act(ctx, u, alarm_id, "shelve", {"reason": body.reason, "until_ms": until},
                      lambda rec: ctx.core.shelve(alarm_id, u.name, body.reason,
                                                  body.minutes, check=check, record=rec))


@router.post("/alarms/{alarm_id}/unshelve", responses=errors(404, 409))
async def unshelve(ctx: Ctx, alarm_id: str,
                   u: Annotated[ApiUser, may("shelve")]) -> AlarmMessage:
    """End shelving now: the alarm is annunciated again if its condition is active."""
    return await _act(ctx, u, alarm_id, "unshelve", {},
                      lambda rec: ctx.core.unshelve(alarm_id, u.name, record=rec))


@router.post("/alarms/{alarm_id}/out-of-service", responses=errors(404, 409))
async def out_of_service(ctx: Ctx, alarm_id: str, body: OutOfService,
                         u: Annotated[ApiUser, may("out_of_service")]) -> AlarmMessage:
    """Take an alarm out of service (person and reason recorded)."""
    return await _act(ctx, u, alarm_id, "out_of_service", {"reason": body.reason},
                      lambda rec: ctx.core.remove_from_service(alarm_id, u.name, body.reason,
                                                               record=rec))


@router.post("/alarms/{alarm_id}/return-to-service", responses=errors(404, 409))
async def return_to_service(ctx: Ctx, alarm_id: str,
                            u: Annotated[ApiUser, may("out_of_service")]) -> AlarmMessage:
    """Put an alarm back in service (annunciated again if its condition is active)."""
    return await _act(ctx, u, alarm_id, "return_to_service", {},
                      lambda rec: ctx.core.return_to_service(alarm_id, u.name, record=rec))


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
            select(AlarmHistory).where(ours(AlarmHistory.enterprise, ctx.core.enterprise),
                                       AlarmHistory.alarm_id == alarm_id)
            .order_by(AlarmHistory.id)).scalars()]


@router.get("/escalations", responses=errors())
def escalations(ctx: Ctx, _: Annotated[ApiUser, may("read")]) -> list[Occurrence]:
    """Unhandled occurrences and the steps fired (SQL only, in a worker thread)."""
    return [Occurrence.model_validate(o) for o in escalation_state(ctx.register.db)]
