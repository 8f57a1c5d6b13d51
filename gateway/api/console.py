"""The operator console: a page served by the gateway (no front-end build step: one HTML
file, one script, one style sheet in ``gateway/api/static/``) and the endpoints only it needs —
who am I, a point's recent trend, one register entry with its transitions, and ``/live``, a
server-sent-event stream of alarm events and register changes so the page updates itself.

EventSource cannot send headers, so ``/live`` takes the API token as ``?token=``; it carries
no data the token's role may not read anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select

from alerting.register import RegisterError
from gateway.api.auth import Ctx, allowed, client_of, errors, may
from gateway.api.models import (
    EntryId,
    EntryWithHistory,
    Me,
    PointTrend,
    PointView,
    SiteView,
    SourceView,
    TransitionOut,
)
from gateway.api.register import entry_out
from gateway.settings import ApiUser
from gateway.store.models import RegisterEntry, RegisterTransition
from gateway.store.register import Register
from gateway.stream.core import Core

STATIC = Path(__file__).parent / "static"
POLL_REGISTER_S = 1.0
router = APIRouter(tags=["console"])


def register_version(register: Register) -> tuple[int, int]:
    """Changes whenever an entry is created or moves: (entries, latest update)."""
    with register.db.session() as s:
        n, last = s.execute(select(func.count(RegisterEntry.id),
                                   func.max(RegisterEntry.updated_ms))).one()
        steps = s.execute(select(func.count(RegisterTransition.id))).scalar_one()
    return int(n) + int(steps), int(last or 0)


def mount(app: FastAPI) -> None:
    """Add the console's page, static files and endpoints to the API app."""
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)


@router.get("/console", include_in_schema=False)
async def console_redirect() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/console/", include_in_schema=False)
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/me", responses=errors())
async def me(ctx: Ctx, u: Annotated[ApiUser, may("read")]) -> Me:
    """Who the token is and what the role may do."""
    core = ctx.core
    return Me(name=u.name, role=u.role, may=allowed(u), enterprise=core.enterprise,
              sources=sorted(set(core.table.sources)))


LIMIT_COLUMNS = ("lolo", "lo", "hi", "hihi", "roc_rise", "roc_fall")


def point_limits(core: Core, i: int) -> dict[str, float]:
    """A point's configured limits (a NaN column is a limit not configured); rates per
    minute, as configured (the table keeps them per second)."""
    tb = core.table
    return {k: v * (60.0 if k.startswith("roc") else 1.0) for k in LIMIT_COLUMNS
            if (v := float(getattr(tb, k)[i])) == v}


@router.get("/site", responses=errors())
async def site(ctx: Ctx, _: Annotated[ApiUser, may("read")]) -> SiteView:
    """The plant with names, units, levels and limits: what the console shows instead of
    ids (read once when it signs in)."""
    core = ctx.core
    tb, lab = core.table, core.labels
    devices = {int(m): dg.name for dg in tb.devices for m in dg.members.tolist()}
    points = {}
    for i, pid in enumerate(tb.ids.tolist()):
        name, unit = lab.points.get(pid, ("", ""))
        points[pid] = PointView(name=name, unit=unit, kind=tb.kinds[i], source=tb.sources[i],
                                equipment=tb.equipments[i], device=devices.get(i),
                                limits=point_limits(core, i))
    return SiteView(enterprise=core.enterprise, name=core.name, sources=[
        SourceView(id=s, name=lab.sources.get(s, s), level=core.source_levels.get(s))
        for s in dict.fromkeys(tb.sources)], equipment=lab.equipment, points=points)


@router.get("/points/{point}/trend", responses=errors(404))
async def point_trend(ctx: Ctx, point: str, _: Annotated[ApiUser, may("read")],
                      minutes: float = Query(default=30, gt=0, le=24 * 60)) -> PointTrend:
    """A point's limits and recent values: from InfluxDB (v1 target), else the samples the
    rules keep. Runs on the loop (the engine's samples); the InfluxDB query does not."""
    tb = ctx.core.table
    i = tb.position.get(point, -1)
    if i < 0:
        raise HTTPException(404, f"unknown point {point!r}")
    samples = await asyncio.to_thread(ctx.trend, point, minutes) if ctx.trend else None
    limits = {k: v for k, v in point_limits(ctx.core, i).items() if not k.startswith("roc")}
    return PointTrend(point=point, kind=tb.kinds[i], source=tb.sources[i],
                      equipment=tb.equipments[i], limits=limits,
                      unit=ctx.core.labels.points.get(point, ("", ""))[1],
                      now_ms=ctx.core.clock.now_ms(),
                      from_="influxdb" if samples is not None else "engine",
                      samples=samples if samples is not None else ctx.core.trend(point))


@router.get("/register/{entry_id}", responses=errors(404))
def entry(ctx: Ctx, entry_id: EntryId, _: Annotated[ApiUser, may("read")],
          ) -> EntryWithHistory:
    """One entry with its transitions (SQL only: in a worker thread)."""
    try:
        row = ctx.register.get(entry_id)
    except RegisterError as exc:
        raise HTTPException(404, str(exc)) from None
    return EntryWithHistory(**entry_out(ctx, row).model_dump(), transitions=[
        TransitionOut.model_validate(t) for t in ctx.register.history(entry_id)])


@router.get("/live", include_in_schema=False)
async def live(ctx: Ctx, request: Request, token: str = "") -> StreamingResponse:
    if ctx.tokens.user(token) is None or ctx.feed is None:
        if token:
            await ctx.failed.refuse(client_of(request))
        raise HTTPException(401, "a valid token is required (?token=)")
    feed, register = ctx.feed, ctx.register
    if feed.subscribers >= ctx.max_live_streams:
        raise HTTPException(503, f"{feed.subscribers} console streams are open, the most "
                                 "this gateway serves (HAZGW_API__MAX_LIVE_STREAMS)")
    q = feed.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\ndata: {\"type\": \"hello\"}\n\n"
            version = await feed.shared(lambda: register_version(register), POLL_REGISTER_S)
            while not feed.closed.is_set():
                msg = None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_REGISTER_S):
                        msg = await q.get()
                if msg is not None:
                    yield f"data: {json.dumps(msg, ensure_ascii=False)}\n\n"
                now = await feed.shared(lambda: register_version(register), POLL_REGISTER_S)
                if now != version:
                    version = now
                    yield "data: {\"type\": \"register\"}\n\n"
                else:
                    yield ": keep-alive\n\n"
        finally:
            feed.unsubscribe(q)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})
