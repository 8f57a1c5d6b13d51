"""Dashboard status lines: each hazard source's level, status and counts, and point limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alerting.batch import ReadingBatch
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.site import load_site
from gateway.stream.core import Core
from gateway.stream.status import LIMITS_EVERY_MS, DashboardStatus


def fields(line: str) -> dict[str, str]:
    return dict(kv.split("=") for kv in line.split(" ")[1].split(","))


async def test_source_status_follows_alarms_and_offline_points(demo_config_path: Path) -> None:
    site = load_site(demo_config_path)
    async with BatchingWriter(NullSink()) as writer:
        core = Core(site, writer)
        ids = list(site.enterprise.points())
        t = 1_767_225_600_000
        values = {"AT201": 1.5, "DC301_dp": 900.0, "V101_level": 6.0}  # AT201 above L1
        batch = ReadingBatch(core.table.index(np.array(ids)), np.full(len(ids), t),
                             np.array([values.get(p, 0.0) for p in ids]),
                             np.array([2 if p == "DC301_hopper_temp" else 0 for p in ids],
                                      np.uint8))
        await core.process(batch)
        lines = DashboardStatus(core).source_status(t).decode().splitlines()
    by = {ln.split(" ")[0].split("source=")[1]: fields(ln) for ln in lines}
    assert set(by) == {"lpg_farm", "chlorine_store", "al_polishing"}
    # chlorine: GB 18218 grade from the config, one gas alarm standing and unacknowledged
    assert by["chlorine_store"]["status"] == "2i"
    assert by["chlorine_store"]["alarms_standing"] == "1i"
    assert by["chlorine_store"]["alarms_unacked"] == "1i"
    assert by["chlorine_store"]["level"] == {"一级": "1i", "二级": "2i", "三级": "3i",
                                             "四级": "4i"}[site.source_levels()["chlorine_store"]]
    # the dust workshop: a bad-quality hopper temperature is a fault (attention, off line);
    # it is no GB 18218 unit, so level 0
    assert by["al_polishing"]["status"] == "1i"
    assert by["al_polishing"]["points_offline"] == "1i"
    assert by["al_polishing"]["level"] == "0i"
    assert by["lpg_farm"]["status"] == "0i" and by["lpg_farm"]["points"] == "7i"


def limit_points(body: bytes) -> list[str]:
    return [ln.split("point=")[1].split(",")[0] for ln in body.decode().splitlines()
            if ln.startswith("point_limits,")]


async def test_point_limits_and_their_cadence(demo_config_path: Path) -> None:
    site = load_site(demo_config_path)
    async with BatchingWriter(NullSink()) as writer:
        core = Core(site, writer)
        # a status's first limits are every point's: a fresh one gives the reference list
        limits = DashboardStatus(core).limits_due(5).decode().splitlines()
        status = DashboardStatus(core)
        body = status.lines(1000)
        # then a call every 10 s for one refresh period: each writes its share, in turn
        calls = [status.lines(1000 + k * 10_000) for k in range(1, LIMITS_EVERY_MS // 10_000 + 1)]
    again = calls[0]
    gt101 = next(ln for ln in limits if "point=GT101," in ln)
    assert "kind=combustible_gas" in gt101 and fields(gt101) == {"hi": "25.0", "hihi": "50.0"}
    assert all(ln.endswith(" 5") for ln in limits)
    everyone = sorted(limit_points("\n".join(limits).encode()))
    assert sorted(limit_points(body)) == everyone          # all of them at start
    shares = [limit_points(c) for c in calls]
    n = len(everyone)
    assert all(len(s) <= -(-n * 10_000 // LIMITS_EVERY_MS) for s in shares)
    # within one period every point's limits are written again, once
    assert sorted(p for s in shares for p in s) == everyone
    assert status.last_limits_ms == 1000 + LIMITS_EVERY_MS
    assert b"source_status," in again and b"alarm_health," in again
