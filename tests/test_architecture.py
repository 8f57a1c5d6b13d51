"""The import rules of the tree (DESIGN.md "Rooms"), checked on the source of every module,
function-level imports included:

- ``alerting/`` is the pure core: the standard library's non-I/O modules, numpy and pydantic,
  nothing of ``edge`` or ``gateway``;
- ``edge/`` never imports ``gateway`` (an edge box runs without it);
- a room of ``gateway/`` imports only rooms below it in ``LAYERS``, or itself.

``test_the_checker_catches_a_bad_import`` shows each rule failing on a deliberate bad import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# lower first; a room may import the rooms before it
LAYERS: list[set[str]] = [
    {"settings", "site", "importers"},
    {"deployment"},
    {"influx", "broker", "natsconf"},
    {"store"},
    {"stream"},
    {"alarms"},
    {"api", "dashboards"},
    {"app"},
    {"cluster"},
    {"sim"},
    {"testkit"},
    {"cli"},
]
RANK = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}
# I/O, concurrency and process libraries the pure core must not touch
IMPURE = {"asyncio", "socket", "ssl", "select", "selectors", "subprocess", "threading",
          "multiprocessing", "http", "urllib", "shutil", "tempfile", "sqlite3", "logging",
          "paho", "pymodbus", "aiohttp", "influxdb_client", "sqlalchemy", "alembic", "psycopg",
          "fastapi", "uvicorn", "httpx", "grafana_client", "yaml", "orjson", "edge", "gateway"}


def imports(source: str) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in a module's source."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            # ``from gateway import x`` names a room too
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                    if node.module in ("gateway", "edge")]
    return out


def room_of(module: str) -> str | None:
    """The room of a ``gateway`` module (``gateway.stream.core`` → ``stream``)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "gateway" and len(parts) > 1 else None


def violations(path: str, source: str) -> list[str]:
    """Every import of the module at ``path`` (relative, e.g. ``gateway/api/app.py``) that
    breaks a rule."""
    parts = Path(path).with_suffix("").parts
    package, bad = parts[0], []
    mine = parts[1] if package == "gateway" and len(parts) > 1 else None
    for line, mod in imports(source):
        top = mod.split(".")[0]
        where = f"{path}:{line} imports {mod}"
        if package == "alerting" and top in IMPURE:
            bad.append(f"{where}: alerting/ is pure (no I/O, no edge or gateway)")
        elif package == "edge" and top == "gateway":
            bad.append(f"{where}: edge/ never imports gateway/")
        elif package == "gateway" and mine in RANK:
            other = room_of(mod)
            if other in RANK and other != mine and RANK[other] >= RANK[mine]:
                bad.append(f"{where}: room {mine} may not import room {other} "
                           f"(layer {RANK[mine]} ≤ {RANK[other]})")
    return bad


def sources() -> list[Path]:
    return sorted(p for pkg in ("alerting", "edge", "gateway")
                  for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts)


def test_every_room_of_gateway_has_a_layer() -> None:
    rooms = {p.relative_to(ROOT / "gateway").with_suffix("").parts[0]
             for p in (ROOT / "gateway").rglob("*.py") if p.name != "__init__.py"
             or p.parent != ROOT / "gateway"}
    rooms.discard("__init__")
    assert rooms <= set(RANK), f"rooms without a layer: {sorted(rooms - set(RANK))}"


def test_the_tree_keeps_the_import_rules() -> None:
    bad = [v for p in sources()
           for v in violations(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))]
    assert bad == []


@pytest.mark.parametrize(("path", "source", "rule"), [
    ("alerting/engine.py", "import asyncio\n", "alerting/ is pure"),
    ("alerting/engine.py", "from gateway.stream.core import Core\n", "alerting/ is pure"),
    ("edge/agent.py", "def f():\n    from gateway.app import running_core\n",
     "edge/ never imports gateway/"),
    ("gateway/stream/core.py", "from gateway.api.app import create_app\n",
     "room stream may not import room api"),
    ("gateway/influx/writer.py", "from gateway import stream\n",
     "room influx may not import room stream"),
])
def test_the_checker_catches_a_bad_import(path: str, source: str, rule: str) -> None:
    found = violations(path, source)
    assert len(found) == 1 and rule in found[0], found
