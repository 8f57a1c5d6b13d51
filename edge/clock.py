"""Clocks: the wall clock, and the simulated ones that let a plant scenario run faster.

Everything that stamps a reading or waits for a poll asks a ``Clock``. In production that is
the wall clock. The simulator runs scenarios on a scaled clock (``speed`` × real time, from a
chosen start), and the maintenance teams' test kit on a stepped one that moves only when the
kit says so, so that the edge, the simulated plant and the gateway under test all agree on
"now" and a scenario gives the same timeline on a slow machine as on a fast one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    """Milliseconds since the epoch, and how many simulated seconds pass per real one."""

    @property
    def speed(self) -> float: ...
    def now_ms(self) -> int: ...


class WallClock:
    """Real time."""

    speed = 1.0

    def now_ms(self) -> int:
        """Now, in ms since the epoch."""
        return int(time.time() * 1000)


WALL = WallClock()


@dataclass
class ScaledClock:
    """``start_ms`` at the real instant ``wall_start_s`` (time.time()), then ``speed`` × real
    time. Two processes given the same three numbers agree on the time: that is how
    ``hazgw simulate --speed`` shares its clock with an edge agent and a gateway
    (``HAZGW_CLOCK``, see ``spec``)."""

    start_ms: int
    speed: float = 1.0
    wall_start_s: float = field(default_factory=time.time)

    def now_ms(self) -> int:
        """Simulated now."""
        return self.start_ms + int((time.time() - self.wall_start_s) * 1000 * self.speed)

    def spec(self) -> str:
        """The ``HAZGW_CLOCK`` value that reproduces this clock in another process."""
        return f"{self.start_ms}@{self.wall_start_s:.3f}x{self.speed:g}"


@dataclass
class SteppedClock:
    """Time that moves only by ``advance``: the test kit's lockstep clock. ``speed`` is the
    pace the kit aims for, used by anything that would otherwise sleep in real time."""

    t_ms: int = 0
    speed: float = 1.0

    def now_ms(self) -> int:
        """The current step's time."""
        return self.t_ms

    def advance(self, ms: int) -> int:
        """Move forward by ``ms``; returns the new time."""
        if ms < 0:
            raise ValueError(f"a clock does not run backwards ({ms} ms)")
        self.t_ms += ms
        return self.t_ms


_SPEC = re.compile(r"^(\d+)@(\d+(?:\.\d*)?)x(\d+(?:\.\d*)?)$")


def parse_clock(spec: str | None) -> Clock:
    """``None`` or ``""`` → the wall clock; ``START_MS@WALL_S xSPEED`` → a scaled clock."""
    if not spec:
        return WALL
    m = _SPEC.match(spec.strip())
    if m is None:
        raise ValueError(f"clock {spec!r}: expected START_MS@WALL_SxSPEED, "
                         "for example 1767225600000@1767225600.000x100")
    speed = float(m.group(3))
    if not 0 < speed <= 10000:
        raise ValueError(f"clock {spec!r}: speed must be in (0, 10000]")
    return ScaledClock(int(m.group(1)), speed, float(m.group(2)))
