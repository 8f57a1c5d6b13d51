"""The edge against the rogues' gallery (``tests.edge.rogues``): sample by sample, no value
with good quality ever differs from what the device holds, and every device keeps being
polled.

Seen before: a slave behind an RTU-over-TCP converter answering late had two registers
swapped in 9 of 18 values, with good quality (the line stayed open after a timeout and a
repeated request's late answer was taken for the next one's); one exception response marked
the whole device failed, closed its connection and backed off (a valid register got 0 values
in 9 minutes); a slow TCP device flapped (68 offline events in 9 minutes)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from edge.config import ModbusDevice
from edge.poller import LIBRARY_LOG, DevicePoller, Samples, lines_for
from edge.wire import Quality
from tests.edge.rogues import Behaviour, Rogue, value

POLLS = 60          # per device, at least


@dataclass
class Seen:
    """What one device's poller handed over, checked against the device's registers."""

    where: dict[str, tuple[int, str, int]]           # point → (unit, table, address)
    polls: int = 0
    good_polls: int = 0                              # every point good
    wrong: list[tuple[str, float, int]] = field(default_factory=list)
    good: dict[str, int] = field(default_factory=dict)
    details: set[tuple[str, int, int]] = field(default_factory=set)    # (point, q, detail)

    def __call__(self, s: Samples) -> None:
        ids, _, vals, quals, details = s
        self.polls += 1
        self.good_polls += int((quals == Quality.GOOD).all())
        for pid, v, q, d in zip(ids, vals.tolist(), quals.tolist(), details.tolist(),
                                strict=True):
            if d:
                self.details.add((pid, q, d))
            if q == Quality.GOOD:
                self.good[pid] = self.good.get(pid, 0) + 1
                held = value(*self.where[pid])
                if v != held:
                    self.wrong.append((pid, v, held))


def device(port: int, unit: int, registers: dict[str, tuple[str, int]],
           **over: Any) -> tuple[ModbusDevice, Seen]:
    cfg = {"host": "127.0.0.1", "port": port, "unit_id": unit, "poll_interval_s": 0.05,
           "timeout_s": 0.15, "reconnect_max_s": 0.2,
           "registers": {pid: {"address": a, "table": t, "type": "uint16"}
                         for pid, (t, a) in registers.items()}, **over}
    return (ModbusDevice.model_validate(cfg),
            Seen({pid: (unit, t, a) for pid, (t, a) in registers.items()}))


async def poll(devices: dict[str, tuple[ModbusDevice, Seen]], polls: int = POLLS,
               timeout_s: float = 60) -> dict[str, DevicePoller]:
    """Poll every device until each has handed over ``polls`` polls (bounded in time)."""
    lines = lines_for({d: dev for d, (dev, _) in devices.items()})
    pollers = {d: DevicePoller(d, dev, seen, lines[d]) for d, (dev, seen) in devices.items()}
    tasks = [asyncio.create_task(p.run()) for p in pollers.values()]
    try:
        async with asyncio.timeout(timeout_s):
            while any(seen.polls < polls for _, seen in devices.values()):
                await asyncio.sleep(0.02)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return pollers


# two registers far apart: two requests a poll, of the same size, so that one's late
# answer fits the other's request exactly
TWO_BLOCKS = {"a": ("holding", 0), "b": ("holding", 200)}


async def test_a_late_slave_on_an_rtu_line_never_lends_a_value_and_its_neighbour_reads_on(
        ) -> None:
    # late on runs of requests: a repeated request's late answer comes after the next
    # request went out (the swap that was seen)
    slow, healthy = Behaviour(burst=4, late_s=0.25), Behaviour()
    async with Rogue({1: slow, 2: healthy}, framing="rtu") as rogue:
        over = {"transport": "rtu_over_tcp", "retries": 1}
        devices = {"slow": device(rogue.port, 1, TWO_BLOCKS, **over),
                   "healthy": device(rogue.port, 2, {"c": ("holding", 0),
                                                     "d": ("input", 7)}, **over)}
        await poll(devices)
    for name, (_, seen) in devices.items():
        assert seen.wrong == [], f"{name}: wrong values with good quality"
    slow_seen, healthy_seen = devices["slow"][1], devices["healthy"][1]
    assert slow_seen.good.get("a", 0) > 0 and slow_seen.good.get("b", 0) > 0
    assert healthy_seen.good_polls >= 0.9 * healthy_seen.polls


async def test_one_bad_address_leaves_the_other_blocks_read_every_poll(
        caplog: pytest.LogCaptureFixture) -> None:
    rogue_unit = Behaviour(exception_at=frozenset({200}))
    async with Rogue({1: rogue_unit}) as rogue:
        devices = {"dev": device(rogue.port, 1, {**TWO_BLOCKS, "c": ("input", 5)})}
        with caplog.at_level(logging.INFO, logger="edge.poller"):
            pollers = await poll(devices)
        connections = rogue.connections
    seen = devices["dev"][1]
    assert seen.wrong == []
    assert seen.good["a"] == seen.good["c"] == seen.polls       # every poll
    assert "b" not in seen.good
    # the refusal's exception code is the detail of b's samples (bad), of no other point's
    assert seen.details == {("b", Quality.BAD, 2)}
    p = pollers["dev"]
    assert p.online and p.offline_events == 0 and connections == 1      # kept open
    assert p.stats.polls_failed == 0 and p.stats.exception_responses == seen.polls
    assert p.stats.last_exception_code == 2
    said = [r.getMessage() for r in caplog.records]
    assert said == ["device dev answers holding 200..200 (b) with exception code 2: those "
                    "points are bad, the others are read",
                    f"device dev online (tcp:127.0.0.1:{rogue.port})"]


async def test_a_slow_tcp_device_reads_right_values_and_does_not_flap() -> None:
    async with Rogue({1: Behaviour(late_s=0.2)}) as rogue:
        devices = {"slow": device(rogue.port, 1, TWO_BLOCKS, retries=1)}
        pollers = await poll(devices)
    seen = devices["slow"][1]
    assert seen.wrong == [] and seen.good_polls >= 0.9 * seen.polls
    assert pollers["slow"].offline_events <= 1


@pytest.mark.parametrize("framing", ["tcp", "rtu"])
@pytest.mark.parametrize("misbehaviour", [
    {"short": True}, {"wrong_unit": True}, {"wrong_fc": True}, {"close_mid_frame": True},
    {"silent": True}, {"late_s": 0.3}])
async def test_a_misbehaving_answer_is_never_a_good_value_and_polling_goes_on(
        framing: str, misbehaviour: dict[str, Any]) -> None:
    unit = Behaviour(every=3, **misbehaviour)
    async with Rogue({1: unit}, framing=framing) as rogue:
        over = {"transport": "rtu_over_tcp"} if framing == "rtu" else {}
        devices = {"dev": device(rogue.port, 1, TWO_BLOCKS, **over)}
        await poll(devices)
    seen = devices["dev"][1]
    assert seen.wrong == []
    assert seen.good.get("a", 0) > 0 and seen.good.get("b", 0) > 0   # polling went on
    assert unit.requests >= POLLS                                      # it was asked


async def test_six_failing_devices_log_one_line_per_state_change(
        caplog: pytest.LogCaptureFixture) -> None:
    """Silent, short, closing, wrongly framed, wrongly addressed and too slow devices,
    failing every poll: the log has each one's going offline, once, and none of pymodbus's
    own lines (an ERROR with a frame dump for every failed request; counted instead)."""
    kinds: list[dict[str, Any]] = [{"silent": True}, {"short": True},
                                   {"close_mid_frame": True}, {"wrong_fc": True},
                                   {"wrong_unit": True}, {"late_s": 0.5}]
    units = {i + 1: Behaviour(**k) for i, k in enumerate(kinds)}
    before = LIBRARY_LOG.count
    async with Rogue(units) as rogue:
        devices = {f"d{u}": device(rogue.port, u, {"a": ("holding", 0)}) for u in units}
        with caplog.at_level(logging.INFO):
            pollers = await poll(devices, polls=20)
    assert LIBRARY_LOG.count > before
    assert not [r for r in caplog.records if r.name.startswith("pymodbus")]
    for d, p in pollers.items():
        lines = [r.getMessage() for r in caplog.records if f"device {d} " in r.getMessage()]
        assert len(lines) == p.offline_events and p.offline_events == 1, (d, lines)


async def test_a_transport_failure_after_a_refused_block_does_not_say_it_answers_again(
        caplog: pytest.LogCaptureFixture) -> None:
    """Polls that stop at a silent request have not asked the later blocks: the log says the
    refused block once, and never that it answers again."""
    unit = Behaviour(every=4, silent=True, exception_at=frozenset({200}))
    async with Rogue({1: unit}) as rogue:
        devices = {"dev": device(rogue.port, 1, {"a": ("holding", 0), "b": ("holding", 200),
                                                 "c": ("input", 5)}, retries=0)}
        with caplog.at_level(logging.INFO, logger="edge.poller"):
            await poll(devices)
    said = [r.getMessage() for r in caplog.records if "answers holding 200" in r.getMessage()]
    assert devices["dev"][1].wrong == []
    assert len(said) == 1 and "with exception code 2" in said[0]
