"""``/openapi.json`` documents every route's response: each success response of each
operation names a schema (a model or a list of models), and each refusal the route can give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway.api.app import create_app
from gateway.api.live import LiveFeed
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.sim.ports import free_port
from gateway.store.models import Database
from gateway.store.register import Register
from gateway.stream.core import Core
from tests.gateway.test_e2e import small_site


async def openapi(tmp_path: Path) -> dict[str, Any]:
    db = Database(str(tmp_path / "openapi.sqlite3"))
    try:
        async with BatchingWriter(NullSink()) as writer:
            core = Core(small_site(free_port()), writer)
            app = create_app(core, Register(db), {}, feed=LiveFeed(core.enterprise))
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://api") as c:
                spec: dict[str, Any] = (await c.get("/openapi.json")).json()
                return spec
    finally:
        db.close()


async def test_every_route_documents_its_response(tmp_path: Path) -> None:
    spec = await openapi(tmp_path)
    undocumented = []
    operations = 0
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            operations += 1
            ok = [code for code in op["responses"] if code.startswith("2")]
            schemas = [op["responses"][c].get("content", {}).get("application/json", {})
                       .get("schema") for c in ok]
            if not ok or not all(schemas):
                undocumented.append(f"{method.upper()} {path}")
    assert undocumented == []
    assert operations >= 19            # alarms, register, reports, console routes


async def test_refusals_are_documented_with_their_body(tmp_path: Path) -> None:
    spec = await openapi(tmp_path)
    ack = spec["paths"]["/alarms/{alarm_id}/acknowledge"]["post"]["responses"]
    assert {"401", "403", "404", "409"} <= set(ack)
    assert ack["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApiError")
    report = spec["paths"]["/report"]["get"]["responses"]["200"]["content"]
    assert set(report) == {"application/json", "text/csv"}
    alarm = spec["components"]["schemas"]["AlarmMessage"]["properties"]
    assert {"alarm_id", "level_name", "gb50493_level", "value", "limit", "priority"} <= \
        set(alarm)
