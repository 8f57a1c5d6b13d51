"""The REST API (FastAPI; OpenAPI at ``/docs``): alarms, the hazard register, escalation state
(``/escalations``: unhandled alarm occurrences and the steps fired), health. Bearer tokens
map to a user and one role:

=================  ======  ====  ======  ============  ===========  ==========  ======
role               alarms  ack,  out of  register      register     supervised  health,
                   read    shelve service read, stats  create,      listing     escalation,
                           comment                     transition               report
=================  ======  ====  ======  ============  ===========  ==========  ======
operator           yes     yes   –       yes           create       –           yes
safety_manager     yes     yes   yes     yes           yes          –           yes
regulator          yes     –     –       yes           –            yes         yes
admin              yes     yes   yes     yes           yes          yes         yes
=================  ======  ====  ======  ============  ===========  ==========  ======

Refusals: 401 without a valid token, 403 for a role that may not, 404 for an unknown alarm or
entry, 409 for a change the state does not allow, 422 for malformed input; the body's
``detail`` says why. Every change is audit-logged by who made it.

One router per area (``alarms``, ``register``, ``reports``, ``console``); every route has a
response model, so ``/openapi.json`` documents every response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from gateway.api import alarms, console, register, reports, shift
from gateway.api.auth import MAY, ApiContext, Trend
from gateway.api.live import LiveFeed
from gateway.api.tokens import TokenTable
from gateway.settings import ApiUser
from gateway.store.register import Register
from gateway.stream.core import Core

__all__ = ["MAY", "create_app"]


def create_app(core: Core, register_: Register, tokens: Mapping[str, ApiUser],
               online: Callable[[int, int], int | None] | None = None,
               feed: LiveFeed | None = None, trend: Trend | None = None, *,
               docs: bool = False, max_live_streams: int = 20) -> FastAPI:
    """The API over a running core and the register's database; ``online(start, end)``
    counts the points with a good reading in a period, for the daily report. With a live
    ``feed`` (an alarm sink of the core), the operator console is served at ``/console/``
    (``gateway.api.console``), with ``trend`` for point trends."""
    # Swagger UI loads its scripts from a CDN that an air-gapped plant cannot reach: off
    # unless asked for (/openapi.json is always served)
    app = FastAPI(title="hazgw", description=__doc__, docs_url="/docs" if docs else None,
                  redoc_url=None)
    app.state.ctx = ApiContext(core, register_, TokenTable(tokens), online, feed, trend,
                               max_live_streams=max_live_streams)
    app.middleware("http")(_security_headers)
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    for r in (reports.router, alarms.router, register.router, shift.router):
        app.include_router(r)
    if feed is not None:
        console.mount(app)
    return app


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming what is wrong and where, without echoing the input: a NaN sent back made
    the error itself unencodable (a 500), and a 5 MB field would come back whole."""
    return JSONResponse(status_code=422, content={"detail": [
        {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")}
        for e in exc.errors()]})


# What a browser may do with our pages: scripts, styles and connections only from here, not
# framed by anyone (clickjacking), types as declared, no referrer with the token's URL.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


async def _security_headers(request: Request,
                            call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    return response
