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
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependencies in the
# endpoints' annotations at run time, and they name functions local to create_app.
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from alerting.lifecycle import InvalidTransitionError
from alerting.register import Action, Five, Level, RegisterError, Source
from gateway import auditlog, console_api
from gateway.config import ApiRole, ApiUser
from gateway.console_api import Trend
from gateway.core import Core
from gateway.escalation import escalation_state
from gateway.live import LiveFeed, event_json
from gateway.register import Register
from gateway.report import BEIJING, day_bounds, report, report_csv
from gateway.storage import AlarmHistory, as_dict

LIMIT_OF = {"HH": "hihi", "H": "hi", "L": "lo", "LL": "lolo"}
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
}


class Shelve(BaseModel):
    minutes: float = Field(gt=0, le=24 * 60)
    reason: str = Field(min_length=1)


class OutOfService(BaseModel):
    reason: str = Field(min_length=1)


class Ack(BaseModel):
    comment: str | None = None


class Comment(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class FiveIn(BaseModel):
    """The five in place (五到位); unset fields stay as they are."""

    model_config = ConfigDict(extra="forbid")
    measures: str | None = None
    funds_cny: float | None = Field(default=None, ge=0)
    responsible_person: str | None = None
    deadline_ms: int | None = Field(default=None, ge=0)
    contingency_plan: str | None = None

    def five(self) -> Five:
        return Five(**self.model_dump())


class NewEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hazard_source: str = Field(min_length=1)
    title: str = Field(min_length=1)
    level: Level
    source: Source = "inspection"
    point: str | None = None
    description: str = ""
    five: FiveIn = FiveIn()


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Action
    five: FiveIn | None = None
    verifier: str | None = None
    comment: str | None = None


def create_app(core: Core, register: Register, tokens: dict[str, ApiUser],
               online: Callable[[int, int], int | None] | None = None,
               feed: LiveFeed | None = None, trend: Trend | None = None) -> FastAPI:
    """The API over a running core and the register's database; ``online(start, end)``
    counts the points with a good reading in a period, for the daily report. With a live
    ``feed`` (an alarm sink of the core), the operator console is served at ``/console/``
    (``gateway.console_api``), with ``trend`` for point trends."""
    app = FastAPI(title="hazgw", description=__doc__)
    bearer = HTTPBearer(auto_error=False)

    def user(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiUser:
        if creds is None or creds.credentials not in tokens:
            raise HTTPException(401, "a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})
        return tokens[creds.credentials]

    def may(what: str) -> Any:
        def check(u: Annotated[ApiUser, Depends(user)]) -> ApiUser:
            if u.role not in MAY[what]:
                raise HTTPException(403, f"role {u.role} may not {what.replace('_', ' ')}")
            return u
        return Depends(check)

    def now() -> int:
        return int(time.time() * 1000)

    async def act(u: ApiUser, alarm_id: str, action: str, detail: dict[str, Any],
                  do: Any) -> dict[str, Any]:
        try:
            event = do()
        except InvalidTransitionError as exc:
            status = 404 if str(exc).startswith("unknown alarm") else 409
            raise HTTPException(status, str(exc)) from None
        await core.act(event)
        with register.db.session.begin() as s:
            auditlog.append(s, u.name, f"alarm.{action}", f"alarm/{alarm_id}", detail, event.ts)
        return event_json(event)

    @app.get("/health")
    def health() -> dict[str, Any]:
        st = core.stats
        out = {"status": "ok", "messages": st.messages, "readings": st.readings,
               "malformed_messages": st.malformed_messages, "alarm_events": st.alarm_events,
               "pending_points": core.writer.pending_points}
        if feed is not None:         # consoles that fell behind were told to reload
            out.update(console_streams=feed.subscribers, console_resyncs=feed.resyncs)
        return out

    @app.get("/alarms")
    def alarms(_: Annotated[ApiUser, may("read")], source: str | None = None,
               state: str | None = None) -> list[dict[str, Any]]:
        return [with_limit(event_json(e)) for e in core.engine.standing()
                if (source is None or e.source == source) and (state is None or e.state == state)]

    def with_limit(row: dict[str, Any]) -> dict[str, Any]:
        # a standing alarm's event carries no limit: a process alarm's is its level's
        name = LIMIT_OF.get(row["level_name"]) if row["alarm_type"] == "process" else None
        if row["limit"] is None and name is not None and row["point"] is not None:
            i = core.table.position.get(row["point"], -1)
            value = float(getattr(core.table, name)[i]) if i >= 0 else float("nan")
            row["limit"] = value if value == value else None
        return row

    @app.post("/alarms/{alarm_id}/acknowledge")
    async def acknowledge(alarm_id: str, body: Ack,
                          u: Annotated[ApiUser, may("acknowledge")]) -> dict[str, Any]:
        t = now()
        return await act(u, alarm_id, "acknowledge", {"comment": body.comment},
                         lambda: core.engine.acknowledge(alarm_id, u.name, t, body.comment))

    @app.post("/alarms/{alarm_id}/shelve")
    async def shelve(alarm_id: str, body: Shelve,
                     u: Annotated[ApiUser, may("shelve")]) -> dict[str, Any]:
        t = now()
        until = t + int(body.minutes * 60_000)
        return await act(u, alarm_id, "shelve", {"reason": body.reason, "until_ms": until},
                         lambda: core.engine.shelve(alarm_id, u.name, body.reason, until, t))

    @app.post("/alarms/{alarm_id}/out-of-service")
    async def out_of_service(alarm_id: str, body: OutOfService,
                             u: Annotated[ApiUser, may("out_of_service")]) -> dict[str, Any]:
        t = now()
        return await act(u, alarm_id, "out_of_service", {"reason": body.reason},
                         lambda: core.engine.remove_from_service(alarm_id, u.name,
                                                                 body.reason, t))

    @app.post("/alarms/{alarm_id}/comment", status_code=201)
    def comment(alarm_id: str, body: Comment,
                u: Annotated[ApiUser, may("comment")]) -> dict[str, Any]:
        try:
            core.engine.slot(alarm_id)
        except InvalidTransitionError as exc:
            raise HTTPException(404, str(exc)) from None
        with register.db.session.begin() as s:
            row = auditlog.append(s, u.name, "alarm.comment", f"alarm/{alarm_id}",
                                  {"text": body.text}, now())
            return {"alarm_id": alarm_id, "user": u.name, "text": body.text, "ts": row.ts_ms}

    @app.get("/alarms/{alarm_id}/history")
    def history(alarm_id: str, _: Annotated[ApiUser, may("read")]) -> list[dict[str, Any]]:
        with register.db.session() as s:
            return [as_dict(r) for r in s.execute(
                select(AlarmHistory).where(AlarmHistory.alarm_id == alarm_id)
                .order_by(AlarmHistory.id)).scalars()]

    @app.get("/escalations")
    def escalations(_: Annotated[ApiUser, may("read")]) -> list[dict[str, Any]]:
        return escalation_state(register.db)

    @app.get("/report")
    def daily(_: Annotated[ApiUser, may("read")], day: str | None = None,
              format: Literal["json", "csv"] = "json") -> Any:
        try:
            d = date.fromisoformat(day) if day else datetime.now(BEIJING).date()
        except ValueError:
            raise HTTPException(422, f"day: not a date (YYYY-MM-DD): {day!r}") from None
        n_online = online(*day_bounds(d)) if online is not None else None
        rep = report(register.db, core.enterprise, len(core.table), d, n_online)
        if format == "csv":
            return PlainTextResponse(report_csv(rep), media_type="text/csv")
        return rep

    @app.get("/register")
    def entries(_: Annotated[ApiUser, may("read")], state: str | None = None,
                level: str | None = None) -> list[dict[str, Any]]:
        rows = register.all_entries()
        return [as_dict(r) for r in rows
                if (state is None or r.state == state) and (level is None or r.level == level)]

    @app.get("/register/overdue")
    def overdue(_: Annotated[ApiUser, may("read")]) -> list[dict[str, Any]]:
        return [as_dict(r) for r in register.overdue()]

    @app.get("/register/supervised")
    def supervised(_: Annotated[ApiUser, may("read")]) -> list[dict[str, Any]]:
        return [as_dict(r) for r in register.supervised()]

    @app.get("/register/statistics")
    def statistics(_: Annotated[ApiUser, may("read")]) -> list[dict[str, Any]]:
        return register.statistics()

    @app.post("/register", status_code=201)
    def create(body: NewEntry, u: Annotated[ApiUser, may("register_create")]) -> dict[str, Any]:
        five = body.five.five()
        eid = _register_call(lambda: register.create(
            enterprise=core.enterprise, hazard_source=body.hazard_source, title=body.title,
            level=body.level, source=body.source, actor=u.name, point=body.point,
            description=body.description, five=five))
        return as_dict(register.get(eid))

    @app.post("/register/{entry_id}/transition")
    def step(entry_id: int, body: Step,
             u: Annotated[ApiUser, may("register_transition")]) -> dict[str, Any]:
        five = body.five.five() if body.five is not None else None
        _register_call(lambda: register.transition(entry_id, body.action, u.name, five=five,
                                                   verifier=body.verifier,
                                                   comment=body.comment))
        return as_dict(register.get(entry_id))

    @app.post("/register/{entry_id}/supervise")
    def supervise(entry_id: int, u: Annotated[ApiUser, may("supervise")]) -> dict[str, Any]:
        _register_call(lambda: register.list_for_supervision(entry_id, u.name))
        return as_dict(register.get(entry_id))

    if feed is not None:
        console_api.mount(app, core, register, tokens, may,
                          lambda u: sorted(k for k, roles in MAY.items() if u.role in roles),
                          feed, trend)
    return app


def _register_call(fn: Any) -> Any:
    try:
        return fn()
    except RegisterError as exc:
        status = 404 if str(exc).startswith("no register entry") else 409
        raise HTTPException(status, str(exc)) from None
