"""``hazgw replay`` of a recorded CSV: 100 000 rows of 3-minute samples (about 7 months) of
three demo-plant points, from reading the file to the timeline, in this process.

    python -m bench.replay [ROWS]
"""

from __future__ import annotations

import csv
import math
import sys
import tempfile
import time
from pathlib import Path

from bench.polling import ROOT
from gateway.sim.replay import replay
from gateway.site import load_site

T0 = 1_772_323_200          # 2026-03-01 00:00 UTC


def write_recording(path: Path, rows: int) -> None:
    """Level, collector ΔP and gas, 180 s apart, wandering through their limits."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "V101_level", "DC301_dp", "GT101"])
        for i in range(rows):
            w.writerow([T0 + i * 180, round(6 + 4 * math.sin(i / 500) + 0.05 * math.sin(i), 3),
                        round(1200 + 700 * math.sin(i / 300), 1),
                        round(max(0.0, 30 * math.sin(i / 1000)), 2)])


def figures(rows: int = 100_000) -> dict[str, float]:
    """Seconds to replay ``rows`` rows (3 readings each), and readings per second."""
    site = load_site(ROOT / "config" / "demo" / "plant.yaml")
    with tempfile.TemporaryDirectory(prefix="hazgw-replay-") as tmp:
        path = Path(tmp) / "recording.csv"
        write_recording(path, rows)
        started = time.perf_counter()
        r = replay(site, path)
        seconds = time.perf_counter() - started
    return {"replay_rows": float(rows), "replay_seconds": seconds,
            "replay_readings_per_s": r.result.readings / seconds,
            "replay_annunciated_events": float(len(r.timeline()))}


if __name__ == "__main__":
    print(figures(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
