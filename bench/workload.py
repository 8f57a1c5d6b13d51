"""Synthetic plants and wire messages for the benchmarks."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

from edge import wire
from gateway.site import SiteConfig, parse_site

ENTERPRISE = "91320582MA1W3K4X5R"
PERSONS = {r: {"name": r, "phone": "+86 138 0000 0000"} for r in ("main", "technical",
                                                                  "operational")}
# Every rule kind on every point: limits with default delays, rate of change, trend,
# flatline, tamper and stale.
ALL_RULES: dict[str, Any] = {
    "kind": "level", "unit": "m", "range_low": 0, "range_high": 12,
    "lolo": 1, "lo": 2, "hi": 10, "hihi": 11, "stale_after_s": 120,
    "roc": {"rise_per_min": 30, "fall_per_min": 30, "window_s": 10},
    "trend": {"horizon_s": 300, "window_s": 60},
    "flatline": {"suspect_s": 300, "fail_s": 900, "tolerance": 0.0001},
    "tamper": {},
}
# Points that the latency probe flips across a limit: no delays, not latched, no other rule.
PROBE: dict[str, Any] = {"kind": "level", "unit": "m", "range_low": 0, "range_high": 100,
                         "hi": 50, "on_delay_s": 0, "off_delay_s": 0, "stale_after_s": 86400}


def point_ids(n_points: int) -> list[str]:
    """Ids of the synthetic points."""
    return [f"L{i:06d}" for i in range(n_points)]


def probe_ids(n: int) -> list[str]:
    """Ids of the latency-probe points."""
    return [f"A{i:04d}" for i in range(n)]


def synthetic_site(n_points: int, n_probes: int = 0) -> SiteConfig:
    """An enterprise with ``n_points`` points carrying every rule kind (and probe points)."""
    points = {pid: ALL_RULES for pid in point_ids(n_points)}
    points.update({pid: PROBE for pid in probe_ids(n_probes)})
    return parse_site({"enterprise": {
        "code": ENTERPRISE, "name": "bench",
        "hazard_sources": {"farm": {
            "name": "farm", "unit_type": "storage", "exposed_population_500m": 0,
            "responsible_persons": PERSONS,
            "equipment": {"T": {"kind": "tank", "points": points}}}}}})


def values(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Steady readings around 6 m with noise, and rare excursions past H."""
    vals = rng.normal(6, 0.05, n)
    vals[rng.random(n) < 0.0005] = 10.5
    return vals


def messages(n_points: int, per_message: int, n_messages: int, edges: int = 4,
             seed: int = 1, t0_ms: int | None = None, step_ms: int = 1000,
             ) -> list[tuple[str, bytes]]:
    """(topic, payload) wire messages; each poll cycle covers every point once. Stamped
    from ``t0_ms`` (default: an hour ago, whole seconds), inside the window of times the
    gateway accepts."""
    if t0_ms is None:
        t0_ms = (int(time.time()) - 3600) * 1000
    rng = np.random.default_rng(seed)
    ids = point_ids(n_points)
    per_cycle = max(1, n_points // per_message)
    out = []
    for m in range(n_messages):
        edge = f"edge-{m % edges}"
        cycle, part = divmod(m, per_cycle)
        start = (part * per_message) % n_points
        sel = [ids[(start + k) % n_points] for k in range(per_message)]
        ts = np.full(per_message, t0_ms + cycle * step_ms, np.int64)
        payload = wire.encode(edge, 1, m // edges, sel, ts, values(rng, per_message),
                              np.zeros(per_message, np.uint8))
        out.append((wire.readings_topic(ENTERPRISE, edge), payload))
    return out
