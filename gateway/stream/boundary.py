"""The ingest's boundary: what an incoming message must be before the engine sees it.

The wire decoder (``edge.wire.decode``) checks the shape (flat columns of the right kinds,
equal lengths, finite values). Here the rest, against the site and the gateway's clock:

- a byte limit per message and a limit of ids per message;
- only edges that the site declares, each on its own topic, and only the points the site
  assigns to that edge (its Modbus registers and MQTT sensors) — a site that declares no
  edges at all (a benchmark's synthetic plant) accepts any edge and point, said at start;
- a plausible boot (not in the future) and a bounded sequence jump, so that one message
  cannot make every later one of its edge look like a duplicate;
- each reading's time within a window around the gateway's clock (default 7 days back,
  5 minutes ahead): a reading from the far future would otherwise clear a stale alarm for
  good, a time in seconds would land in 1970.

A message that fails is rejected whole, counted by reason and dead-lettered with a sample;
readings that fail (foreign point, time out of window) are dropped one by one and counted,
the rest of their message kept.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import numpy as np
import numpy.typing as npt

from gateway.settings import IngestLimits
from gateway.site import SiteConfig

log = logging.getLogger(__name__)

# every reason a message is refused at the boundary (the self-metrics name them)
REASONS = ("malformed", "too_large", "unknown_edge", "edge_mismatch", "too_many_ids",
           "implausible_boot", "seq_jump", "core_error", "time_out_of_window",
           "bad_signature")
READING_REASONS = ("foreign_point", "time_out_of_window")


def edge_points(site: SiteConfig, ids: list[str]) -> dict[str, frozenset[int]]:
    """Edge id → positions (in ``ids``) of the points it may send: its Modbus registers and
    the points its MQTT sensors name. A ``{N}`` template fills only the ids its mapping's
    ``allow_points`` lists, or else ids of its shape that no Modbus device of any edge reads
    (a template could address any point of the enterprise, another edge's PLC points too)."""
    pos = {pid: i for i, pid in enumerate(ids)}
    polled = {p for edge in site.edges.values() for dev in edge.modbus.values()
              for p in dev.registers}
    out: dict[str, frozenset[int]] = {}
    for eid, edge in site.edges.items():
        mine = {pos[p] for dev in edge.modbus.values() for p in dev.registers if p in pos}
        for sensor in edge.mqtt_sensors.values():
            for template in sensor.points():
                if "{" not in template:
                    if template in pos:
                        mine.add(pos[template])
                    continue
                shape = re.compile("".join(
                    "[^/]+" if re.fullmatch(r"\{\d+\}", part) else re.escape(part)
                    for part in re.split(r"(\{\d+\})", template)))
                allowed = set(sensor.allow_points) if sensor.allow_points is not None \
                    else None
                mine.update(i for pid, i in pos.items() if shape.fullmatch(pid)
                            and (pid in allowed if allowed is not None else pid not in polled))
        out[eid] = frozenset(mine)
    return out


class Boundary:
    """The checks of one core; counts what it refuses."""

    def __init__(self, limits: IngestLimits, n_points: int,
                 edges: dict[str, frozenset[int]] | None) -> None:
        self.limits = limits
        self.open = not edges
        self.masks: dict[str, npt.NDArray[np.bool_]] = {}
        for eid, positions in (edges or {}).items():
            mask = np.zeros(n_points + 1, bool)      # the extra slot: unknown ids (-1)
            mask[list(positions)] = True
            self.masks[eid] = mask
        self.refused: Counter[str] = Counter({r: 0 for r in REASONS})
        self.dropped: Counter[str] = Counter({r: 0 for r in READING_REASONS})
        if self.open:
            log.warning("the site declares no edges: readings from any edge id are accepted")

    def edge_known(self, edge: str) -> bool:
        """Whether the site declares this edge."""
        return self.open or edge in self.masks

    def readings(self, edge: str, points: npt.NDArray[np.int32], ts: npt.NDArray[np.int64],
                 now_ms: int) -> npt.NDArray[np.bool_] | None:
        """Which readings of one message to keep (None: all of them); counts the others."""
        lim = self.limits
        keep = (ts >= now_ms - int(lim.ts_past_s * 1000)) \
            & (ts <= now_ms + int(lim.ts_future_s * 1000))
        late = len(ts) - int(np.count_nonzero(keep))
        if late:
            self.dropped["time_out_of_window"] += late
        mask = self.masks.get(edge)
        if mask is not None:
            # unknown ids (-1) index the extra slot and stay for the unknown-id count
            mine = mask[points] | (points < 0)
            foreign = int(np.count_nonzero(keep & ~mine))
            if foreign:
                self.dropped["foreign_point"] += foreign
                keep &= mine
        return None if bool(keep.all()) else keep

    def stats(self) -> dict[str, int]:
        """Integer self-metrics: refusals by reason, dropped readings by reason."""
        return {**{f"refused_{k}": v for k, v in self.refused.items()},
                **{f"dropped_{k}": v for k, v in self.dropped.items()}}
