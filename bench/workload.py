"""Synthetic plants and wire messages for the benchmarks."""

from __future__ import annotations

import numpy as np

from edge import wire
from gateway.config import SiteConfig, parse_site

ENTERPRISE = "91320582MA1W3K4X5R"
PERSONS = {r: {"name": r, "phone": "+86 138 0000 0000"} for r in ("main", "technical",
                                                                  "operational")}


def synthetic_site(n_points: int) -> SiteConfig:
    """An enterprise with ``n_points`` level points (limits 1 / 2 / 10 / 11 m)."""
    points = {f"L{i:06d}": {"kind": "level", "unit": "m", "range_low": 0, "range_high": 12,
                            "lolo": 1, "lo": 2, "hi": 10, "hihi": 11} for i in range(n_points)}
    return parse_site({"enterprise": {
        "code": ENTERPRISE, "name": "bench",
        "hazard_sources": {"farm": {
            "name": "farm", "unit_type": "storage", "exposed_population_500m": 0,
            "responsible_persons": PERSONS,
            "equipment": {"T": {"kind": "tank", "points": points}}}}}})


def messages(n_points: int, per_message: int, n_messages: int, edges: int = 4,
             seed: int = 1) -> list[tuple[str, bytes]]:
    """(topic, payload) wire messages cycling through the points, a few edges interleaved."""
    rng = np.random.default_rng(seed)
    ids = [f"L{i:06d}" for i in range(n_points)]
    out = []
    t0 = 1_790_000_000_000
    for m in range(n_messages):
        edge = f"edge-{m % edges}"
        start = (m * per_message) % n_points
        sel = [ids[(start + k) % n_points] for k in range(per_message)]
        ts = np.full(per_message, t0 + m, np.int64)
        # mostly normal values, with a few excursions so the rules have transitions to emit
        vals = rng.normal(6, 1.0, per_message)
        vals[rng.random(per_message) < 0.001] = 10.5
        payload = wire.encode(edge, 1, m // edges, sel, ts, vals, np.zeros(per_message, np.uint8))
        out.append((wire.readings_topic(ENTERPRISE, edge), payload))
    return out
