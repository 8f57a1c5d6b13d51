"""``/register``: the hazard register (隐患台账) — list, create, walk the closed loop,
supervised listing (挂牌督办). Its endpoints do SQL only, so they run in FastAPI's worker
threads, off the event loop."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from alerting.register import Action, Five, Level, RegisterError, Source
from gateway.api.auth import ApiContext, Ctx, errors, may
from gateway.api.models import (
    EntryId,
    EntryOut,
    Ident,
    Name,
    OptionalText,
    Paragraph,
    StatisticRow,
    Title,
)
from gateway.settings import ApiUser
from gateway.store.models import RegisterEntry
from gateway.store.register import is_supervised

router = APIRouter(tags=["register"])
T = TypeVar("T")


# the last millisecond of year 9999: later dates are no deadline (and no int64 either)
MAX_TS_MS = 253_402_300_799_999


class FiveIn(BaseModel):
    """The five in place (五到位); unset fields stay as they are."""

    model_config = ConfigDict(extra="forbid")
    measures: Paragraph | None = None
    funds_cny: float | None = Field(default=None, ge=0, le=1e13, allow_inf_nan=False)
    responsible_person: Name | None = None
    deadline_ms: int | None = Field(default=None, ge=0, le=MAX_TS_MS)
    contingency_plan: Paragraph | None = None

    def five(self) -> Five:
        return Five(**self.model_dump())


class NewEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hazard_source: Ident = Field(description="a hazard source of the site")
    title: Title
    level: Level
    source: Source = "inspection"
    point: Ident | None = Field(default=None, description="a point of that hazard source")
    description: OptionalText = ""
    five: FiveIn = FiveIn()


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Action
    five: FiveIn | None = None
    verifier: Name | None = Field(default=None, description="who verified (recorded beside "
                                                            "the person who acts)")
    comment: Paragraph | None = None


def entry_out(ctx: ApiContext, row: RegisterEntry) -> EntryOut:
    """An entry as the API shows it, with whether it is supervised now."""
    return EntryOut.model_validate(row).model_copy(
        update={"supervised": is_supervised(row, ctx.now_ms())})


def register_call(fn: Callable[[], T]) -> T:
    """Run a register operation; its refusal becomes 404 (no such entry) or 409."""
    try:
        return fn()
    except RegisterError as exc:
        status = 404 if str(exc).startswith("no register entry") else 409
        raise HTTPException(status, str(exc)) from None


@router.get("/register", responses=errors())
def entries(ctx: Ctx, _: Annotated[ApiUser, may("read")], state: str | None = None,
            level: str | None = None) -> list[EntryOut]:
    """Every entry, optionally of one state or level."""
    return [entry_out(ctx, r) for r in ctx.register.all_entries()
            if (state is None or r.state == state) and (level is None or r.level == level)]


@router.get("/register/overdue", responses=errors())
def overdue(ctx: Ctx, _: Annotated[ApiUser, may("read")]) -> list[EntryOut]:
    """Entries past their deadline and not closed."""
    return [entry_out(ctx, r) for r in ctx.register.overdue(ctx.now_ms())]


@router.get("/register/supervised", responses=errors())
def supervised(ctx: Ctx, _: Annotated[ApiUser, may("read")]) -> list[EntryOut]:
    """Entries under supervised listing (major, overdue, or listed by a regulator)."""
    return [entry_out(ctx, r) for r in ctx.register.supervised(ctx.now_ms())]


@router.get("/register/statistics", responses=errors())
def statistics(ctx: Ctx, _: Annotated[ApiUser, may("read")]) -> list[StatisticRow]:
    """Entry counts by hazard source, level and state."""
    return [StatisticRow.model_validate(r) for r in ctx.register.statistics()]


# entries one person may register in an hour: each may notify the regulator
CREATES_PER_HOUR = 30


def _check_new(ctx: ApiContext, body: NewEntry, user: str) -> None:
    """What the site and the clock say of a new entry (422 / 429, nothing changed)."""
    tb = ctx.core.table
    sources = set(tb.sources)
    if body.hazard_source not in sources:
        raise HTTPException(422, f"hazard_source {body.hazard_source!r} is not a hazard "
                                 f"source of the site ({', '.join(sorted(sources))})")
    if body.point is not None:
        i = tb.position.get(body.point, -1)
        if i < 0 or tb.sources[i] != body.hazard_source:
            raise HTTPException(422, f"point {body.point!r} is not a point of "
                                     f"{body.hazard_source!r}")
    now = ctx.now_ms()
    d = body.five.deadline_ms
    if d is not None and d <= now:
        raise HTTPException(422, "five.deadline_ms is in the past: an entry is registered "
                                 "with a deadline ahead (it would be overdue at once)")
    recent = ctx.creations.setdefault(user, deque())
    while recent and now - recent[0] > 3_600_000:
        recent.popleft()
    if len(recent) >= CREATES_PER_HOUR:
        raise HTTPException(429, f"{user} registered {len(recent)} entries in the last hour, "
                                 f"the most one person may ({CREATES_PER_HOUR})")
    recent.append(now)


@router.post("/register", status_code=201, responses=errors(409, 422, 429))
def create(ctx: Ctx, body: NewEntry,
           u: Annotated[ApiUser, may("register_create")]) -> EntryOut:
    """Register a hazard (登记) of a hazard source of the site, with a deadline ahead if one
    is given; at most 30 entries a person an hour."""
    _check_new(ctx, body, u.name)
    five = body.five.five()
    eid = register_call(lambda: ctx.register.create(
        enterprise=ctx.core.enterprise, hazard_source=body.hazard_source, title=body.title,
        level=body.level, source=body.source, actor=u.name, point=body.point,
        description=body.description, five=five))
    return entry_out(ctx, ctx.register.get(eid))


@router.post("/register/{entry_id}/transition", responses=errors(404, 409))
def step(ctx: Ctx, entry_id: EntryId, body: Step,
         u: Annotated[ApiUser, may("register_transition")]) -> EntryOut:
    """Move an entry one step through the closed loop."""
    five = body.five.five() if body.five is not None else None
    register_call(lambda: ctx.register.transition(entry_id, body.action, u.name, five=five,
                                                  verifier=body.verifier,
                                                  comment=body.comment))
    return entry_out(ctx, ctx.register.get(entry_id))


@router.post("/register/{entry_id}/supervise", responses=errors(404, 409))
def supervise(ctx: Ctx, entry_id: EntryId,
              u: Annotated[ApiUser, may("supervise")]) -> EntryOut:
    """List an open entry for supervision (挂牌督办)."""
    register_call(lambda: ctx.register.list_for_supervision(entry_id, u.name))
    return entry_out(ctx, ctx.register.get(entry_id))
