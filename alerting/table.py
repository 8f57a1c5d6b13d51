"""The plant's alarm rules compiled into columns, one entry per point in config order.

Everything the vectorised evaluation reads is here as a numpy array; NaN or 0 means "rule off".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np
import numpy.typing as npt

from alerting.plant import Enterprise, Point

# Alarm types; an alarm is identified by (type, point) or, for votes, by its vote index.
ALARM_TYPES = ("process", "roc", "predictive", "fault", "stale", "flatline", "tamper", "vote")
PROCESS, ROC, PREDICTIVE, FAULT, STALE, FLATLINE, TAMPER, VOTE = range(len(ALARM_TYPES))
POINT_TYPES = VOTE  # the first VOTE types exist once per point

# Samples kept per point for windowed rules (rate of change, trend): a power of two (the ring
# index is a bit mask), at least K_MAX, more when a window needs it, within a memory budget
# for all points' rings (16 bytes a sample) and at most K_LIMIT. 32 MiB: at 100 000 points
# the rings stay at 16 samples (the engine's memory and speed as before); at 10 000 points a
# window may hold 127 samples, at 1 000 points 1 023.
K_MAX = 16
K_LIMIT = 1024
RING_BUDGET_BYTES = 32 * 1024 * 1024


def ring_capacity(n_points: int, needed: int) -> int:
    """Ring slots per point: the power of two ≥ ``needed`` (samples a window wants, +1),
    between K_MAX and what the budget allows."""
    budget = RING_BUDGET_BYTES // (16 * max(n_points, 1))
    cap = K_MAX
    while cap * 2 <= min(budget, K_LIMIT):
        cap *= 2
    want = K_MAX
    while want < needed and want < cap:
        want *= 2
    return want

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class VoteGroup:
    """A compiled k-out-of-n vote."""

    name: str
    source: str
    equipment: str
    members: npt.NDArray[np.int32]
    k: int
    level: int


def _arr(values: Sequence[float | None]) -> F64:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _ms(values: Sequence[float | None]) -> I64:
    return np.array([0 if v is None else round(v * 1000) for v in values], dtype=np.int64)


@dataclass(frozen=True)
class DeviceGroup:
    """The points one device (or connection) delivers: off line is one alarm for them all."""

    name: str                                  # "<edge>/<device>"
    members: npt.NDArray[np.int32]


@dataclass
class RuleTable:
    """Compiled rules of every point (index = position in config order)."""

    ids: npt.NDArray[np.str_]
    kinds: list[str]
    sources: list[str]
    equipments: list[str]
    consoles: list[str]
    is_gas: BOOL
    is_toxic: BOOL
    lolo: F64
    lo: F64
    hi: F64
    hihi: F64
    deadband: F64
    on_ms: I64
    off_ms: I64
    range_low: F64
    range_high: F64
    fault_margin: F64
    latched: BOOL
    re_alarm_ms: I64
    roc_rise: F64
    roc_fall: F64
    roc_k: npt.NDArray[np.intp]
    trend_horizon_ms: I64
    trend_k: npt.NDArray[np.intp]
    trend_min: npt.NDArray[np.intp]
    trend_window_s: F64
    stale_ms: I64
    flat_suspect_ms: I64
    flat_fail_ms: I64
    flat_tol: F64
    flat_require_related: BOOL
    related_ptr: npt.NDArray[np.intp]
    related_idx: npt.NDArray[np.int32]
    explicit_related: BOOL
    equipment_group: npt.NDArray[np.int32]
    tamper_from: F64
    tamper_zero: F64
    tamper_within_ms: I64
    supp_ctrl: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    supp_below: F64 = field(default_factory=lambda: np.zeros(0))
    supp_above: F64 = field(default_factory=lambda: np.zeros(0))
    votes: list[VoteGroup] = field(default_factory=list)
    k_max: int = K_MAX            # ring slots per point (``ring_capacity``)
    devices: list[DeviceGroup] = field(default_factory=list)

    def __post_init__(self) -> None:
        # point id → position; the engine names alarms with it too
        self.position: dict[str, int] = {pid: i for i, pid in enumerate(self.ids.tolist())}
        # the same strings as a list, for naming by position without a numpy lookup
        self.names: list[str] = list(self.position)
        if len(self.position) != len(self.ids):    # the config refuses them: a bug if here
            raise ValueError("point ids of a rule table must be unique")
        with np.errstate(invalid="ignore"):
            # the nearest limits on each side: a reading short of both cannot set any
            self.min_high = np.fmin(self.hi, self.hihi)
            self.max_low = np.fmax(self.lo, self.lolo)
            # readings beyond these are sensor faults (range ± margin)
            self.fault_low = self.range_low - self.fault_margin
            self.fault_high = self.range_high + self.fault_margin
            # the smaller rate limit: rates below 80 % of it cannot set either direction
            self.roc_min = np.fmin(self.roc_rise, self.roc_fall)
        self.vote_members: dict[int, list[int]] = {}
        for vi, vg in enumerate(self.votes):
            for m in vg.members.tolist():
                self.vote_members.setdefault(m, []).append(vi)
        # point → its device's index, -1 for points no device delivers (MQTT sensors)
        self.device_of = np.full(len(self.ids), -1, np.int32)
        for di, dg in enumerate(self.devices):
            self.device_of[dg.members] = di

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_alarms(self) -> int:
        """Alarm slots: every point type for every point, then one per vote, then one per
        device."""
        return POINT_TYPES * len(self) + len(self.votes) + len(self.devices)

    @property
    def first_device_slot(self) -> int:
        """The slot of device 0."""
        return POINT_TYPES * len(self) + len(self.votes)

    def index(self, ids: Sequence[str] | npt.NDArray[np.str_]) -> npt.NDArray[np.int32]:
        """Positions of ``ids`` in the table, -1 for ids it does not know (the lookups run in
        C: ``map`` over the dict's ``get``; gateway.stream.core.PointIndex caches repeated
        lists)."""
        names = ids.tolist() if isinstance(ids, np.ndarray) else ids
        return np.fromiter(map(self.position.get, names, repeat(-1)), np.int32, len(names))


def _window_samples(window_s: float | None, interval_s: float, k_max: int = K_MAX) -> int:
    if window_s is None:
        return 0
    return int(min(max(round(window_s / interval_s), 2), k_max - 1))


def _windows(p: Point) -> list[tuple[str, float]]:
    return [(name, w) for name, w in (("roc", p.roc.window_s if p.roc else None),
                                      ("trend", p.trend.window_s if p.trend else None))
            if w is not None]


def samples_needed(points: Sequence[tuple[Point, float]]) -> int:
    """Ring slots the windows of (point, poll interval) pairs want (+1 for the newest)."""
    return max((round(w / iv) + 1 for p, iv in points for _, w in _windows(p)), default=0)


def window_notes(p: Point, interval_s: float, k_max: int) -> list[tuple[str, str]]:
    """What a point's windowed rules can do at its poll interval, where that is less than the
    config says: (field path under the point, warning). A window holds at most ``k_max - 1``
    samples (``ring_capacity``: a memory budget), so a long window at a fast poll is shorter
    than configured; a window with fewer samples than the trend needs can never warn."""
    out: list[tuple[str, str]] = []
    for name, window in _windows(p):
        wanted = window / interval_s
        k = _window_samples(window, interval_s, k_max)
        if wanted > k_max - 1:
            out.append((f"{name}.window_s", f"{window:g} s at a {interval_s:g} s poll is "
                        f"{wanted:.0f} samples; a window holds at most {k_max - 1} here "
                        f"(memory budget): it covers the last {k * interval_s:g} s"))
        if name == "trend" and p.trend is not None and k < p.trend.min_samples:
            out.append(("trend.window_s", f"{window:g} s at a {interval_s:g} s poll holds "
                        f"{k} samples, fewer than min_samples ({p.trend.min_samples}): "
                        f"this rule can never warn"))
    return out


def compile_rules(ent: Enterprise, poll_interval_s: dict[str, float] | None = None,
                  default_interval_s: float = 1.0,
                  device_of: dict[str, str] | None = None) -> RuleTable:
    """Compile an enterprise's points. ``poll_interval_s`` (point → seconds) sizes the windows
    of rate-of-change and trend rules and the default stale time; ``device_of`` (point →
    device name) groups the points one device delivers (its off line is one alarm)."""
    intervals = poll_interval_s or {}
    pts = ent.points()
    ids = list(pts)
    pos = {pid: i for i, pid in enumerate(ids)}
    console_of = ent.console_of()
    rows: list[tuple[str, str, str, Point]] = [(pid, s, e, p) for pid, (s, e, p) in pts.items()]
    pts_cfg = [r[3] for r in rows]

    def interval(pid: str) -> float:
        return intervals.get(pid, default_interval_s)

    k_max = ring_capacity(len(rows), samples_needed([(p, interval(pid))
                                                     for pid, _, _, p in rows]))

    # Explicit related points as CSR lists; by default the rest of the same equipment, which
    # is evaluated per equipment group instead (a list per point would grow with n²).
    related_ptr = [0]
    related_idx: list[int] = []
    for _, _, _, p in rows:
        if p.flatline is not None and p.flatline.related is not None:
            related_idx += [pos[q] for q in p.flatline.related]
        related_ptr.append(len(related_idx))
    groups: dict[tuple[str, str], int] = {}
    equipment_group = np.array([groups.setdefault((r[1], r[2]), len(groups)) for r in rows],
                               np.int32)

    stale = [p.stale_after_s if p.stale_after_s is not None
             else max(30.0, 10 * interval(pid)) for pid, _, _, p in rows]
    span = np.array([p.range_high - p.range_low for p in pts_cfg])
    rl = np.array([p.range_low for p in pts_cfg])
    votes = [VoteGroup(vid, sid, eid, np.array([pos[m] for m in v.points], np.int32), v.k,
                       v.level)
             for sid, src in ent.hazard_sources.items() for eid, eq in src.equipment.items()
             for vid, v in eq.votes.items()]
    return RuleTable(
        ids=np.array(ids, dtype=np.str_),
        kinds=[p.kind for p in pts_cfg], sources=[r[1] for r in rows],
        equipments=[r[2] for r in rows],
        consoles=[console_of[r[1]] for r in rows],
        is_gas=np.array([p.kind in ("combustible_gas", "toxic_gas") for p in pts_cfg], bool),
        is_toxic=np.array([p.kind == "toxic_gas" for p in pts_cfg], bool),
        lolo=_arr([p.lolo for p in pts_cfg]), lo=_arr([p.lo for p in pts_cfg]),
        hi=_arr([p.hi for p in pts_cfg]), hihi=_arr([p.hihi for p in pts_cfg]),
        deadband=np.array([p.effective_deadband for p in pts_cfg]),
        on_ms=_ms([p.delays_s[0] for p in pts_cfg]), off_ms=_ms([p.delays_s[1] for p in pts_cfg]),
        range_low=rl, range_high=rl + span,
        # readings this far outside the instrument range are a sensor fault (1 % of span)
        fault_margin=0.01 * span,
        latched=np.array([p.is_latched for p in pts_cfg], bool),
        re_alarm_ms=_ms([p.re_alarm_s for p in pts_cfg]),
        roc_rise=_arr([p.roc.rise_per_min / 60 if p.roc and p.roc.rise_per_min else None
                       for p in pts_cfg]),
        roc_fall=_arr([p.roc.fall_per_min / 60 if p.roc and p.roc.fall_per_min else None
                       for p in pts_cfg]),
        roc_k=np.array([_window_samples(p.roc.window_s if p.roc else None, interval(pid), k_max)
                        for pid, _, _, p in rows], np.intp),
        trend_horizon_ms=_ms([p.trend.horizon_s if p.trend else None for p in pts_cfg]),
        trend_k=np.array([_window_samples(p.trend.window_s if p.trend else None,
                                          interval(pid), k_max)
                          for pid, _, _, p in rows], np.intp),
        trend_min=np.array([p.trend.min_samples if p.trend else 0 for p in pts_cfg], np.intp),
        trend_window_s=np.array([p.trend.window_s if p.trend else 0.0 for p in pts_cfg]),
        stale_ms=_ms(stale),
        flat_suspect_ms=_ms([p.flatline.suspect_s if p.flatline else None for p in pts_cfg]),
        flat_fail_ms=_ms([p.flatline.fail_s if p.flatline else None for p in pts_cfg]),
        flat_tol=np.array([p.flatline.tolerance if p.flatline else 0.0 for p in pts_cfg]),
        flat_require_related=np.array([bool(p.flatline and p.flatline.require_related_moving)
                                       for p in pts_cfg], bool),
        related_ptr=np.array(related_ptr, np.intp), related_idx=np.array(related_idx, np.int32),
        explicit_related=np.array([bool(p.flatline and p.flatline.related is not None)
                                   for p in pts_cfg], bool),
        equipment_group=equipment_group,
        tamper_from=np.where([p.tamper is not None for p in pts_cfg],
                             rl + span * np.array([p.tamper.from_fraction if p.tamper else 0
                                                   for p in pts_cfg]), np.nan),
        tamper_zero=np.where([p.tamper is not None for p in pts_cfg],
                             rl + span * np.array([p.tamper.zero_fraction if p.tamper else 0
                                                   for p in pts_cfg]), np.nan),
        tamper_within_ms=_ms([p.tamper.within_s if p.tamper else None for p in pts_cfg]),
        supp_ctrl=np.array([pos[p.suppress_when.point] if p.suppress_when else -1
                            for p in pts_cfg], np.int32),
        supp_below=_arr([p.suppress_when.below if p.suppress_when else None for p in pts_cfg]),
        supp_above=_arr([p.suppress_when.above if p.suppress_when else None for p in pts_cfg]),
        votes=votes, k_max=k_max, devices=_devices(device_of or {}, pos),
    )


def _devices(device_of: dict[str, str], pos: dict[str, int]) -> list[DeviceGroup]:
    by: dict[str, list[int]] = {}
    for pid, name in device_of.items():
        if pid in pos:
            by.setdefault(name, []).append(pos[pid])
    return [DeviceGroup(name, np.array(sorted(m), np.int32)) for name, m in by.items()]
