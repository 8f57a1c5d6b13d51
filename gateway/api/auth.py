"""Who may do what: bearer tokens map to a user and one role (the table in ``gateway.api``),
and the request's context (the running core, the register, the clock) as FastAPI
dependencies."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from gateway.api.live import LiveFeed
from gateway.api.tokens import FailedAuth, TokenTable
from gateway.settings import ApiRole, ApiUser
from gateway.store.register import Register
from gateway.stream.core import Core

ALL: frozenset[ApiRole] = frozenset({"operator", "safety_manager", "regulator", "admin"})
MAY: dict[str, frozenset[ApiRole]] = {
    "read": ALL,
    "acknowledge": frozenset({"operator", "safety_manager", "admin"}),
    "shelve": frozenset({"operator", "safety_manager", "admin"}),
    "comment": frozenset({"operator", "safety_manager", "admin"}),
    "out_of_service": frozenset({"safety_manager", "admin"}),
    "register_create": frozenset({"operator", "safety_manager", "admin"}),
    "register_transition": frozenset({"safety_manager", "admin"}),
    "supervise": frozenset({"regulator", "admin"}),
    "shift_log": frozenset({"operator", "safety_manager", "admin"}),
}
# a point's recent (ts_ms, value) samples over ``minutes``, or None when there is no history
Trend = Callable[[str, float], list[tuple[int, float]] | None]


@dataclass
class ApiContext:
    """What the endpoints work on; one per app (``app.state.ctx``)."""

    core: Core
    register: Register
    tokens: TokenTable
    online: Callable[[int, int], int | None] | None = None
    feed: LiveFeed | None = None
    trend: Trend | None = None
    failed: FailedAuth = field(default_factory=FailedAuth)
    max_live_streams: int = 20
    # register entries created, per user: times (ms), the last hour's (a rate limit)
    creations: dict[str, deque[int]] = field(default_factory=dict)

    def now_ms(self) -> int:
        """The gateway's time (simulated under ``HAZGW_CLOCK``)."""
        return self.core.clock.now_ms()


def allowed(u: ApiUser) -> list[str]:
    """What a user's role may do, by name."""
    return sorted(k for k, roles in MAY.items() if u.role in roles)


async def context(request: Request) -> ApiContext:
    """The app's context."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]
_bearer = HTTPBearer(auto_error=False)


async def user(ctx: Ctx, request: Request,
               creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
               ) -> ApiUser:
    """The token's user; 401 without a valid token (a wrong one is said and slowed)."""
    found = ctx.tokens.user(creds.credentials) if creds is not None else None
    if found is None:
        if creds is not None:
            await ctx.failed.refuse(client_of(request))
        raise HTTPException(401, "a valid bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    return found


def client_of(request: Request) -> str:
    """The client's address, as the server saw it."""
    return request.client.host if request.client is not None else "unknown"


async def maybe_user(ctx: Ctx, creds: Annotated[HTTPAuthorizationCredentials | None,
                                                Depends(_bearer)]) -> ApiUser | None:
    """The token's user, or None (for what answers less without a token)."""
    return ctx.tokens.user(creds.credentials) if creds is not None else None


def may(what: str) -> Any:
    """A dependency giving the user when the role may ``what``; 403 otherwise."""
    async def check(u: Annotated[ApiUser, Depends(user)]) -> ApiUser:
        if u.role not in MAY[what]:
            raise HTTPException(403, f"role {u.role} may not {what.replace('_', ' ')}")
        return u
    return Depends(check)


class ApiError(BaseModel):
    """Every refusal's body: why."""

    detail: str


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the refusals a route can give (401 and 403 always)."""
    why = {401: "no valid bearer token", 403: "the token's role may not do this",
           404: "no such alarm, point or entry", 409: "not allowed in its current state",
           422: "malformed input", 429: "too many in a while", 500: "not done: a record "
           "could not be written (nothing changed)", 503: "too many open streams"}
    return {c: {"model": ApiError, "description": why[c]} for c in (401, 403, *codes)}
