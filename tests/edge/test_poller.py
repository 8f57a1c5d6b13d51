from __future__ import annotations

import logging

import numpy as np
import pytest

from alerting.batch import Quality
from alerting.plant import Point
from edge.config import ModbusDevice
from edge.poller import DevicePoller, Samples
from edge.sim.simulator import PlantModel, SimulatedDevice
from gateway.sim.ports import free_port

POINTS = {
    "L1": Point.model_validate({"kind": "level", "unit": "m", "range_low": 0,
                                "range_high": 12, "lo": 1, "hi": 10}),
    "T1": Point.model_validate({"kind": "temperature", "unit": "°C", "range_low": -20,
                                "range_high": 60, "hi": 40}),
    "G1": Point.model_validate({"kind": "combustible_gas", "unit": "%LEL", "range_low": 0,
                                "range_high": 100, "hi": 25, "hihi": 50}),
}


def device(port: int) -> ModbusDevice:
    return ModbusDevice.model_validate({
        "host": "127.0.0.1", "port": port, "poll_interval_s": 0.1, "timeout_s": 0.5,
        "registers": {
            "L1": {"address": 0, "type": "float32", "word_order": "CDAB"},
            "T1": {"address": 2, "type": "int16", "scale": 0.1},
            "G1": {"table": "input", "address": 5, "type": "uint16", "scale": 0.1},
        }})


class Frozen(PlantModel):
    """Values that do not move, so what the poller read can be compared exactly."""

    def value(self, pid: str, t: float | None = None) -> float:
        return {"L1": 6.25, "T1": 21.7, "G1": 12.3}[pid]


async def test_poll_reads_every_type_from_a_real_modbus_server() -> None:
    dev = device(free_port())
    sim = SimulatedDevice(dev, Frozen(POINTS))
    await sim.start()
    got: list[Samples] = []
    poller = DevicePoller("plc", dev, got.append)
    try:
        await poller.poll_once()
    finally:
        poller.line.close()
        await sim.stop()
    ids, ts, vals, q, _ = got[0]
    assert dict(zip(ids, vals.tolist(), strict=True)) == {
        "L1": 6.25, "T1": pytest.approx(21.7), "G1": pytest.approx(12.3)}
    assert q.tolist() == [Quality.GOOD] * 3
    assert poller.online is True and len(set(ts.tolist())) == 1


async def test_dead_device_gives_bad_quality_and_one_offline_event(
        caplog: pytest.LogCaptureFixture) -> None:
    dev = device(free_port())  # nothing listens here
    got: list[Samples] = []
    poller = DevicePoller("plc", dev, got.append)
    with caplog.at_level(logging.WARNING, logger="edge.poller"):
        for i in range(4):
            await poller.poll_once()
            if i < 2:
                assert poller.online is None        # not said offline before the third
    poller.line.close()
    assert all(np.isnan(s[2]).all() and (s[3] == Quality.STALE).all() for s in got)
    offline = [r.message for r in caplog.records if "offline" in r.message]
    assert len(offline) == 1 and "cannot connect to tcp:127.0.0.1" in offline[0]
    # hysteresis and backoff: a failed poll is retried at the next one; after the third
    # failure (offline_after_failures) the device is offline and waits 2 intervals, so the
    # fourth poll does not try to connect
    assert poller.connect_attempts == 3
    assert (poller.stats.polls_failed, poller.stats.polls_skipped) == (3, 1)
    assert poller.offline_events == 1
