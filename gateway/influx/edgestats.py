"""Edge self-metrics (edge.stats messages) as InfluxDB lines.

Measurements: ``edge_stats`` (tags enterprise, edge) and ``device_stats`` (tags enterprise,
edge, device), fields as the edge names them; integers stay integers. Time = the edge's
snapshot time.
"""

from __future__ import annotations

from edge.stats import EdgeStats, Numbers
from gateway.influx.schema import escape_tag


def _fields(values: Numbers) -> str:
    return ",".join(f"{k}={v}i" if isinstance(v, int) else f"{k}={float(v)!r}"
                    for k, v in values.items())


def stats_lines(enterprise: str, s: EdgeStats) -> bytes:
    """Line protocol for one stats message (empty groups are left out)."""
    tags = f"enterprise={escape_tag(enterprise)},edge={escape_tag(s.edge)}"
    rows = []
    if s.edge_stats:
        rows.append(f"edge_stats,{tags} {_fields(s.edge_stats)} {s.ts_ms}")
    for device, values in s.devices.items():
        if values:
            rows.append(f"device_stats,{tags},device={escape_tag(device)} {_fields(values)} "
                        f"{s.ts_ms}")
    return "".join(r + "\n" for r in rows).encode()
