"""``/health`` and ``/report``: the gateway's counters and the daily regulator report."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import PlainTextResponse

from gateway.api.auth import Ctx, errors, may, maybe_user
from gateway.api.models import DeadLetter, DeadLetters, Health, HealthStatus, LoopState, Report
from gateway.settings import ApiUser
from gateway.store.report import BEIJING, day_bounds, report, report_csv

router = APIRouter(tags=["reports"])


@router.get("/health")
async def health(ctx: Ctx, u: Annotated[ApiUser | None, Depends(maybe_user)],
                 ) -> Health | HealthStatus:
    """Whether the gateway is ok (no token needed: for probes); with a token, its counters
    and loops as well."""
    st, feed, loops = ctx.core.stats, ctx.feed, ctx.core.loops
    # degraded: a loop fails now, or a notification was given up (someone was not told)
    status: Literal["ok", "degraded"] = \
        "degraded" if loops.failing() or st.notifications_failed else "ok"
    if u is None:
        return HealthStatus(status=status)
    return Health(status=status, failed_token_attempts=ctx.failed.total,
                  loops={n: LoopState.model_validate(h) for n, h in loops.health().items()},
                  messages=st.messages, readings=st.readings,
                  malformed_messages=st.malformed_messages, alarm_events=st.alarm_events,
                  notifications_failed=st.notifications_failed,
                  pending_points=ctx.core.writer.pending_points,
                  console_streams=feed.subscribers if feed is not None else None,
                  console_resyncs=feed.resyncs if feed is not None else None)


@router.get("/dead-letters", responses=errors())
async def dead_letters(ctx: Ctx, _: Annotated[ApiUser, may("read")]) -> DeadLetters:
    """What the ingest refused, by reason, with the newest messages (samples)."""
    b = ctx.core.boundary
    return DeadLetters(refused=dict(b.refused), dropped_readings=dict(b.dropped),
                       newest=[DeadLetter.model_validate(d)
                               for d in reversed(ctx.core.stats.dead_letters)])


@router.get("/report", response_model=Report, responses={
    **errors(422), 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                         "description": "the report (JSON, or metric,value rows as CSV)"}})
async def daily(ctx: Ctx, _: Annotated[ApiUser, may("read")], day: str | None = None,
                format: Literal["json", "csv"] = "json") -> Report | PlainTextResponse:
    """The daily report (a Beijing-time day; today by the gateway's clock by default)."""
    try:
        d = date.fromisoformat(day) if day else \
            datetime.fromtimestamp(ctx.now_ms() / 1000, BEIJING).date()
    except ValueError:
        raise HTTPException(422, f"day: not a date (YYYY-MM-DD): {day!r}") from None
    online = ctx.online
    n_online = await asyncio.to_thread(online, *day_bounds(d)) if online is not None else None
    rep = await asyncio.to_thread(report, ctx.register.db, ctx.core.enterprise,
                                  len(ctx.core.table), d, n_online, ctx.core.ack_within_s)
    if format == "csv":
        return PlainTextResponse(report_csv(rep), media_type="text/csv")
    return Report.model_validate(rep)
