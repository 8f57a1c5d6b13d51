"""Dashboard status lines: each hazard source's level, status and counts, and point limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alerting.batch import ReadingBatch
from gateway.config import load_site
from gateway.core import Core
from gateway.influx import NullSink
from gateway.status import DashboardStatus
from gateway.writer import BatchingWriter


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


async def test_point_limits_and_their_cadence(demo_config_path: Path) -> None:
    site = load_site(demo_config_path)
    async with BatchingWriter(NullSink()) as writer:
        core = Core(site, writer)
        status = DashboardStatus(core)
        limits = status.point_limits(5).decode().splitlines()
        body = status.lines(1000)
        again = status.lines(31_000)
        later = status.lines(61_000)
    gt101 = next(ln for ln in limits if "point=GT101," in ln)
    assert "kind=combustible_gas" in gt101 and fields(gt101) == {"hi": "25.0", "hihi": "50.0"}
    assert b"point_limits," in body and b"point_limits," not in again
    assert b"point_limits," in later and status.last_limits_ms == 61_000
    assert all(ln.endswith(" 5") for ln in limits)
    assert b"source_status," in again and b"alarm_health," in again
