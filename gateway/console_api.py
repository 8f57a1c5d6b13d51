"""The operator console: a page served by the gateway (no front-end build step: one HTML
file, one script, one style sheet in ``gateway/console/``) and the endpoints only it needs —
who am I, a point's recent trend, one register entry with its transitions, and ``/live``, a
server-sent-event stream of alarm events and register changes so the page updates itself.

EventSource cannot send headers, so ``/live`` takes the API token as ``?token=``; it carries
no data the token's role may not read anyway.
"""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time.
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select

from alerting.register import RegisterError
from gateway.config import ApiUser
from gateway.core import Core
from gateway.live import LiveFeed
from gateway.register import Register
from gateway.storage import RegisterEntry, RegisterTransition, as_dict

STATIC = Path(__file__).parent / "console"
# a point's recent (ts_ms, value) samples over ``minutes``, or None when there is no history
Trend = Callable[[str, float], list[tuple[int, float]] | None]
POLL_REGISTER_S = 1.0


def register_version(register: Register) -> tuple[int, int]:
    """Changes whenever an entry is created or moves: (entries, latest update)."""
    with register.db.session() as s:
        n, last = s.execute(select(func.count(RegisterEntry.id),
                                   func.max(RegisterEntry.updated_ms))).one()
        steps = s.execute(select(func.count(RegisterTransition.id))).scalar_one()
    return int(n) + int(steps), int(last or 0)


def mount(app: FastAPI, core: Core, register: Register, tokens: dict[str, ApiUser],
          may: Callable[[str], Any], allowed: Callable[[ApiUser], list[str]],
          feed: LiveFeed, trend: Trend | None = None) -> None:
    """Add the console's page and endpoints to the API app."""
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    @app.get("/console", include_in_schema=False)
    def console_redirect() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.get("/console/", include_in_schema=False)
    def console_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/me")
    def me(u: Annotated[ApiUser, may("read")]) -> dict[str, Any]:
        return {"name": u.name, "role": u.role, "may": allowed(u),
                "enterprise": core.enterprise, "sources": sorted(set(core.table.sources))}

    @app.get("/points/{point}/trend")
    def point_trend(point: str, _: Annotated[ApiUser, may("read")],
                    minutes: float = Query(default=30, gt=0, le=24 * 60),
                    ) -> dict[str, Any]:
        i = core.table.position.get(point, -1)
        if i < 0:
            raise HTTPException(404, f"unknown point {point!r}")
        samples = trend(point, minutes) if trend is not None else None
        tb = core.table
        limits = {k: float(getattr(tb, k)[i]) for k in ("lolo", "lo", "hi", "hihi")
                  if float(getattr(tb, k)[i]) == float(getattr(tb, k)[i])}
        return {"point": point, "kind": tb.kinds[i], "source": tb.sources[i],
                "equipment": tb.equipments[i], "limits": limits,
                "from": "influxdb" if samples is not None else "engine",
                "samples": samples if samples is not None else core.engine.recent(point)}

    @app.get("/register/{entry_id}")
    def entry(entry_id: int, _: Annotated[ApiUser, may("read")]) -> dict[str, Any]:
        try:
            row = register.get(entry_id)
        except RegisterError as exc:
            raise HTTPException(404, str(exc)) from None
        return {**as_dict(row), "transitions": [as_dict(t) for t in register.history(entry_id)]}

    @app.get("/live", include_in_schema=False)
    async def live(token: str = "") -> StreamingResponse:
        if token not in tokens:
            raise HTTPException(401, "a valid token is required (?token=)")
        q = feed.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\ndata: {\"type\": \"hello\"}\n\n"
                version = await asyncio.to_thread(register_version, register)
                while not feed.closed.is_set():
                    msg = None
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_REGISTER_S):
                            msg = await q.get()
                    if msg is not None:
                        yield f"data: {json.dumps(msg, ensure_ascii=False)}\n\n"
                    now = await asyncio.to_thread(register_version, register)
                    if now != version:
                        version = now
                        yield "data: {\"type\": \"register\"}\n\n"
                    else:
                        yield ": keep-alive\n\n"
            finally:
                feed.unsubscribe(q)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})
