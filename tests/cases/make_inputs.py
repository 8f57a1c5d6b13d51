"""Writes the input series of the golden cases (deterministic; run after changing a case):

    python -m tests.cases.make_inputs
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def write(case: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """input.csv: ts_ms, point, value, and quality when a row gives one (else good)."""
    with_q = any(len(r) > 3 for r in rows)
    with (HERE / case / "input.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ts_ms", "point", "value"] + (["quality"] if with_q else []))
        for r in sorted(rows):
            ts, p, v = r[:3]
            q = [r[3] if len(r) > 3 else 0] if with_q else []
            w.writerow([ts, p, "nan" if v != v else f"{v:.4f}", *q])


def lpg_tank_overfill() -> list[tuple[int, str, float]]:
    """Sphere level filling at 0.6 m/min from 9.0 m: H (10.5) then HH (11.1)."""
    return [(i * 1000, "V101_level", 9.0 + 0.01 * i) for i in range(0, 301)]


def chlorine_leak() -> list[tuple[int, str, float]]:
    """Cl2 in the tank room: 0.1 → 3 mg/m³ and back (L1 = 1, L2 = 2 mg/m³)."""
    out = []
    for i in range(0, 181):
        t = i * 1000
        v = 0.1 if i < 20 else min(3.0, 0.1 + 0.05 * (i - 20)) if i < 100 else \
            max(0.1, 3.0 - 0.05 * (i - 100))
        out.append((t, "AT201", v))
    return out


def dust_collector_clog() -> list[tuple[int, str, float]]:
    """Filter ΔP creeping 1200 → 1900 Pa at 100 Pa/min (H = 1800 Pa), with a small ripple."""
    return [(i * 5000, "DC301_dp", 1200 + 100 * (i * 5 / 60) + 3 * math.sin(i))
            for i in range(0, 85)]


def stuck_gas_detector() -> list[tuple[int, str, float]]:
    """GT2 sticks at 1.7 %LEL from 60 s while its neighbours GT1 and GT3 keep moving."""
    rnd = random.Random(11)
    out = []
    for i in range(0, 481):
        t = i * 1000
        out.append((t, "GT1", round(1.5 + rnd.uniform(-0.4, 0.4), 2)))
        out.append((t, "GT2", 1.7 if i >= 60 else round(1.5 + rnd.uniform(-0.4, 0.4), 2)))
        out.append((t, "GT3", round(1.5 + rnd.uniform(-0.4, 0.4), 2)))
    return out


def detector_unplugged() -> list[tuple[int, str, float]]:
    """GT5 reports every second, falls silent from 60 s to 200 s, then reports again."""
    return [(i * 1000, "GT5", 2.0) for i in list(range(0, 61)) + list(range(200, 231))]


def chattering_level_switch() -> list[tuple[int, str, float]]:
    """A high-level switch flapping every 2 s for a minute, then steady off."""
    return [(i * 2000, "LS101", float(i % 2 == 1) if i < 30 else 0.0) for i in range(0, 60)]


def gas_flapping_l2() -> list[tuple[int, str, float]]:
    """Combustible gas at a leak: L1 at 10 s, L2 at 20 s, then swinging L2 ↔ L1 every second
    (one reading inside the HH deadband first), back to normal at 60 s, L1 again at 75 s
    (beyond the 60 s chatter window)."""
    def v(t: int) -> float:
        if t < 10:
            return 5.0
        if t < 20:
            return 30.0
        if t == 20:
            return 55.0
        if t == 21:
            return 49.0                     # below HH (50) but inside its deadband (2)
        if t < 60:
            return 44.0 if t % 2 == 0 else 55.0
        return 10.0 if t < 75 else 30.0
    return [(t * 1000, "GT101", v(t)) for t in range(0, 86)]


def device_offline() -> list[tuple[int, str, float, int]]:
    """plc-1 (GT1, GT2, LT1) stops answering at 60 s: the edge sends its points as
    "no answer" (quality 3, no value) at 60 s and, after its backoff, at 100 s; it answers
    again at 120 s. LT1 already had a sensor fault (bad quality) from 30 s. GT3 on plc-2
    reads on. Samples every 10 s otherwise."""
    out: list[tuple[int, str, float, int]] = []
    for t in range(0, 181, 10):
        down = t in (60, 100)
        if 60 < t < 120 and not down:
            pass                            # backoff: plc-1 not asked
        else:
            for p in ("GT1", "GT2"):
                out.append((t * 1000, p, math.nan if down else 2.0, 3 if down else 0))
            lt_bad = 30 <= t < 60
            out.append((t * 1000, "LT1", math.nan if down else 5.0,
                        3 if down else 2 if lt_bad else 0))
        out.append((t * 1000, "GT3", 2.0, 0))
    return out


def shelve_expiry() -> list[tuple[int, str, float]]:
    """LT2 above H from 10 s (shelved at 20 s for a minute, still high when it expires);
    LT3 above H from 10 s, shelved at 20 s, worse (HH) at 40 s: annunciated again."""
    out = []
    for t in range(0, 121, 5):
        out.append((t * 1000, "LT2", 8.5 if t >= 10 else 5.0))
        out.append((t * 1000, "LT3", 9.5 if t >= 40 else 8.5 if t >= 10 else 5.0))
    return out


def shelve_refused() -> list[tuple[int, str, float]]:
    """LT4 normal until 40 s, then above H: shelving it in advance (at 10 s) was refused, so
    the rise is annunciated."""
    return [(t * 1000, "LT4", 8.5 if t >= 40 else 5.0) for t in range(0, 61, 5)]


if __name__ == "__main__":
    cases: list[tuple[str, Callable[[], Sequence[tuple[Any, ...]]]]] = [
        ("lpg_tank_overfill", lpg_tank_overfill), ("chlorine_leak", chlorine_leak),
        ("dust_collector_clog", dust_collector_clog), ("stuck_gas_detector", stuck_gas_detector),
        ("detector_unplugged", detector_unplugged),
        ("chattering_level_switch", chattering_level_switch),
        ("gas_flapping_l2", gas_flapping_l2), ("device_offline", device_offline),
        ("shelve_expiry", shelve_expiry), ("shelve_refused", shelve_refused)]
    for name, make in cases:
        (HERE / name).mkdir(exist_ok=True)
        write(name, make())
