"""Reading InfluxDB back (InfluxQL over the v1 ``/query`` endpoint): the daily report's online
points and the console's point trends. Only for a ``v1`` target; others answer None."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from typing import Any

from gateway.settings import InfluxSettings

_SAFE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def query(influx: InfluxSettings, q: str) -> list[dict[str, Any]] | None:
    """The series of one statement; None when the target is not v1; RuntimeError on an
    error InfluxDB reports."""
    if influx.kind != "v1":
        return None
    params = {"db": influx.database, "q": q, "epoch": "ms"}
    if influx.username:
        params.update({"u": influx.username,
                       "p": influx.password.get_secret_value() if influx.password else ""})
    with urllib.request.urlopen(f"{influx.url}/query?{urllib.parse.urlencode(params)}",
                                timeout=influx.timeout_s) as r:
        body = json.loads(r.read())
    result = body["results"][0]
    if "error" in result:
        raise RuntimeError(f"InfluxDB: {result['error']}")
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def trend(influx: InfluxSettings, enterprise: str, point: str, end_ms: int, minutes: float,
          ) -> list[tuple[int, float]] | None:
    """A point's mean per step (120 steps) over the last ``minutes``; None when InfluxDB
    cannot be asked, or the point's name is not one we would put in a query."""
    if not (_SAFE.match(point) and _SAFE.match(enterprise)):
        return None
    start = end_ms - int(minutes * 60_000)
    step = max(1, int(minutes * 60 / 120))
    series = query(influx, f"SELECT mean(\"value\") FROM \"reading\" WHERE \"enterprise\" = "
                           f"'{enterprise}' AND \"point\" = '{point}' AND time >= {start}ms AND "
                           f"time <= {end_ms}ms GROUP BY time({step}s) fill(none)")
    if series is None:
        return None
    return [(int(t), float(v)) for s in series for t, v in s["values"] if v is not None]
