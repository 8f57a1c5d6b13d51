"""Alarm conditions of a batch, vectorised: which (alarm, level) changed when.

For every known reading: stale (a gap longer than the point's stale time) and sensor fault
(bad quality, no value, or outside the instrument range). For every valid reading: process
level (four hysteresis limits, then on/off delays), rate of change, trend forecast, flatline
and tamper. Votes follow from the process-level changes. The output is one row per condition
change, in time order, for the alarm lifecycle to turn into transitions.

Timestamps of changes are those of the readings that reveal them, except where the true time
is known exactly: a stale alarm starts ``stale_after`` after the last reading, a delayed
process alarm when its delay ran out, a flatline when the run became long enough. Thus a
series yields the same changes whether it arrives in one batch or one reading at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerting.batch import Quality, ReadingBatch
from alerting.grouping import Groups, group, switch
from alerting.state import RuleState
from alerting.table import (
    FAULT,
    FLATLINE,
    POINT_TYPES,
    PREDICTIVE,
    PROCESS,
    ROC,
    STALE,
    TAMPER,
    RuleTable,
)
from alerting.windows import rate_of_change, trend_forecast, update_ring

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]


# ``Changes.info`` of a fault or stale change that its device's off line alarm covers: the
# lifecycle records it without annunciation (``alerting.lifecycle``).
MASKED = 1.0


@dataclass(frozen=True)
class Changes:
    """Condition changes as columns: alarm slot, time, new level, value, limit, extra info
    (forecast seconds for predictive warnings)."""

    slot: I64
    ts: I64
    level: I8
    value: F64
    limit: F64
    info: F64

    def __len__(self) -> int:
        return len(self.slot)

    @staticmethod
    def join(parts: list[Changes]) -> Changes:
        """All parts, ordered by (time, slot)."""
        parts = [c for c in parts if len(c)]
        if not parts:
            e = np.empty(0)
            return Changes(e.astype(np.int64), e.astype(np.int64), e.astype(np.int8), e, e, e)
        cols = [np.concatenate([getattr(c, f) for c in parts])
                for f in ("slot", "ts", "level", "value", "limit", "info")]
        order = np.lexsort((cols[0], cols[1]))
        return Changes(*(c[order] for c in cols))


def _changes(kind: int, n: int, g: Groups, ts: I64, level: I8, prior: I8, value: F64,
             limit: F64 | None = None, stamp: I64 | None = None,
             info: F64 | None = None) -> Changes:
    """Rows where ``level`` differs from the reading before it (or ``prior``), and ``prior``
    updated to each group's last level."""
    prev = g.previous(level, prior)
    at = np.flatnonzero(level != prev)
    g.store(prior, level)
    return Changes(kind * n + g.point[at].astype(np.int64),
                   (stamp if stamp is not None else ts)[at], level[at], value[at],
                   limit[at] if limit is not None else np.full(len(at), np.nan),
                   info[at] if info is not None else np.full(len(at), np.nan))


def evaluate(table: RuleTable, st: RuleState, batch: ReadingBatch) -> Changes:
    """Condition changes caused by ``batch``; updates ``st``."""
    n = len(table)
    known = batch.point >= 0
    if st.origin_ts < 0 and known.any():
        st.origin_ts = int(batch.ts_ms[known].min())
    g_all = group(batch.point, batch.ts_ms, known)
    v_all = batch.value
    p_all = np.where(known, batch.point, 0)
    with np.errstate(invalid="ignore"):
        # NaN values compare False: not in range, so a missing value is a fault as well
        usable = ((batch.quality <= Quality.UNCERTAIN)
                  & (v_all >= table.fault_low[p_all]) & (v_all <= table.fault_high[p_all]))
    valid = known & usable
    # A device (or its connection) that did not answer: its points' samples say so
    # (Quality.STALE, from the edge). One device alarm tells it; their fault and stale
    # changes are recorded without annunciation (``MASKED``), per ISA-18.2 flood prevention.
    if table.devices:
        no_answer = (batch.quality[g_all.order] == Quality.STALE) \
            & (table.device_of[g_all.point] >= 0)
    else:
        no_answer = np.zeros(len(g_all), bool)
    out = [_stale(table, st, g_all, no_answer),
           _fault(table, st, g_all, batch, ~usable[g_all.order], no_answer),
           _devices(table, st, g_all, no_answer)]
    g = g_all if np.array_equal(valid, known) else group(batch.point, batch.ts_ms, valid)
    ts, v = g.ts, batch.value[g.order]
    before = st.proc_level.copy() if table.votes else st.proc_level
    if len(g):
        out.append(_process(table, st, g, ts, v))
        if (table.roc_k > 0).any():
            roc, limit = rate_of_change(table, st, g, ts, v)
            out.append(_changes(ROC, n, g, ts, roc, st.roc, v, limit))
        if (table.trend_k > 0).any():
            lvl, target, secs = trend_forecast(table, st, g, ts, v)
            out.append(_changes(PREDICTIVE, n, g, ts, lvl, st.pred, v, target, info=secs))
        out.append(_flatline(table, st, g, ts, v))
        out.append(_tamper(table, st, g, ts, v))
        update_ring(st, g, ts, v)
        g.store(st.last_v, v)
        g.store(st.last_valid_ts, ts)
    changes = Changes.join(out)
    if not table.votes:
        return changes
    return Changes.join([changes, votes(table, st, changes, before)])


def _stale(table: RuleTable, st: RuleState, g: Groups,
           no_answer: npt.NDArray[np.bool_]) -> Changes:
    """A gap beyond the stale time: stale from last + stale_after until the next reading
    (masked when the reading before the gap said its device did not answer)."""
    n = len(table)
    if len(g) == 0:
        return Changes.join([])
    p, ts = g.point, g.ts
    masked_before = g.previous(no_answer.astype(np.int8), st.comm) != 0
    prev_ts = g.previous(ts, st.last_ts)
    lim = g.of(table.stale_ms)
    gap = (lim > 0) & (prev_ts >= 0) & (ts - prev_ts > lim)
    already = g.first & (g.of(st.stale) == 1)          # a tick raised it before this reading
    start = gap & ~already
    end = gap | already
    g.store(st.stale, 0)
    g.store(st.last_ts, ts)
    if not end.any():                 # nearly always: no gap, nothing stale
        return Changes.join([])
    s, e = np.flatnonzero(start), np.flatnonzero(end)
    nan, nan_e = np.full(len(s), np.nan), np.full(len(e), np.nan)
    return Changes.join([
        Changes(STALE * n + p[s].astype(np.int64), prev_ts[s] + lim[s],
                np.ones(len(s), np.int8), nan, nan, np.where(masked_before[s], MASKED, nan)),
        Changes(STALE * n + p[e].astype(np.int64), ts[e], np.zeros(len(e), np.int8),
                nan_e, nan_e, nan_e)])


def _fault(table: RuleTable, st: RuleState, g: Groups, batch: ReadingBatch,
           bad: npt.NDArray[np.bool_], no_answer: npt.NDArray[np.bool_]) -> Changes:
    """Sensor fault (level 1): bad or stale quality, no value, or outside the instrument
    range; level 2 when its device did not answer (masked: the device alarm tells it)."""
    level = np.where(no_answer, 2, bad).astype(np.int8)
    return _changes(FAULT, len(table), g, g.ts, level, st.fault, batch.value[g.order],
                    info=np.where(no_answer, MASKED, np.nan))


def _devices(table: RuleTable, st: RuleState, g: Groups,
             no_answer: npt.NDArray[np.bool_]) -> Changes:
    """Device off line (level 1) while any point it delivers last said it did not answer;
    back on line when all of them have answered again. Changes are few: walked one by one."""
    if not table.devices or not (no_answer.any() or st.dev_count.any()):
        return Changes.join([])
    flag = no_answer.astype(np.int8)
    at = np.flatnonzero(flag != g.previous(flag, st.comm))
    g.store(st.comm, flag)
    rows: list[tuple[int, int, int]] = []
    first = table.first_device_slot
    for i in at.tolist():
        d = int(table.device_of[g.point[i]])
        st.dev_count[d] += 1 if flag[i] else -1
        level = int(st.dev_count[d] > 0)
        if level != st.dev_level[d]:
            st.dev_level[d] = level
            rows.append((first + d, int(g.ts[i]), level))
    if not rows:
        return Changes.join([])
    arr = np.array(rows, dtype=np.int64)
    nan = np.full(len(rows), np.nan)
    return Changes(arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int8), nan, nan, nan)


def _process(table: RuleTable, st: RuleState, g: Groups, ts: I64, v: F64) -> Changes:
    """Process level: hysteresis on the four limits, then on-/off-delays per limit.

    Only points with a reading beyond a limit, or not settled at normal, can change: the rest
    (nearly all, nearly always) are skipped after one comparison.
    """
    with np.errstate(invalid="ignore"):
        near = (v >= g.of(table.min_high)) | (v <= g.of(table.max_low))
    unsettled = (g.of(st.proc_rawbits) != 0) | (g.of(st.proc_delayed) != 0)
    keep = g.whole_groups(near | unsettled, len(table))
    if not keep.all():
        g, ts, v = g.subset(keep), ts[keep], v[keep]
        if len(g) == 0:
            return Changes.join([])
    return _process_some(table, st, g, ts, v)


def _process_some(table: RuleTable, st: RuleState, g: Groups, ts: I64, v: F64) -> Changes:
    """_process on the readings that can change something."""
    p = g.point
    db = table.deadband[p]
    prior = st.proc_raw
    with np.errstate(invalid="ignore"):
        hh_l, h_l, l_l, ll_l = table.hihi[p], table.hi[p], table.lo[p], table.lolo[p]
        # NaN limits compare False both ways: never set; resetting them clears a removed limit.
        raw = [switch(g, v >= h_l, (v < h_l - db) | np.isnan(h_l), prior >= 1),
               switch(g, v >= hh_l, (v < hh_l - db) | np.isnan(hh_l), prior >= 2),
               switch(g, v <= l_l, (v > l_l + db) | np.isnan(l_l), prior <= -1),
               switch(g, v <= ll_l, (v > ll_l + db) | np.isnan(ll_l), prior <= -2)]
    st.proc_raw[p[g.last]] = _level(*raw)[g.last]
    # Delays, per limit: beyond a limit counts once it has lasted the on-delay, back within
    # it once that has lasted the off-delay; confirmed by a reading at or after that time, and
    # stamped with the time the delay ran out.
    on, off = table.on_ms[p], table.off_ms[p]
    delayed, stamp = [], np.full(len(g), np.iinfo(np.int64).min)
    for j, cond in enumerate(raw):
        bit = np.int8(1 << j)
        prior_delayed = (st.proc_delayed & bit) != 0
        moved = cond != g.previous(cond, (st.proc_rawbits & bit) != 0)
        at, inside = g.carry(moved)
        since = np.where(inside, ts[at], st.proc_since[j][p])
        since = np.where(since < 0, ts, since)
        need = np.where(cond, on, off)
        at2, inside2 = g.carry(ts - since >= need)
        d = np.where(inside2, cond[at2], prior_delayed[p])
        flipped = d != g.previous(d, prior_delayed)
        stamp = np.where(flipped, np.maximum(stamp, since + need), stamp)
        last = p[g.last]
        st.proc_since[j][last] = since[g.last]
        st.proc_rawbits[last] = np.where(cond[g.last], st.proc_rawbits[last] | bit,
                                         st.proc_rawbits[last] & ~bit)
        st.proc_delayed[last] = np.where(d[g.last], st.proc_delayed[last] | bit,
                                         st.proc_delayed[last] & ~bit)
        delayed.append(d)
    level = _level(*delayed)
    shown = np.where(level != 0, level, g.previous(level, st.proc_level))
    limits = np.stack([ll_l, l_l, np.full(len(g), np.nan), h_l, hh_l])
    limit = limits[shown.astype(np.intp) + 2, np.arange(len(g))]
    return _changes(PROCESS, len(table), g, ts, level, st.proc_level, v, limit,
                    np.where(stamp == np.iinfo(np.int64).min, ts, stamp))


def _level(h: npt.NDArray[np.bool_], hh: npt.NDArray[np.bool_], lw: npt.NDArray[np.bool_],
           ll: npt.NDArray[np.bool_]) -> I8:
    """-2 LL, -1 L, 0, 1 H, 2 HH from the four limit states."""
    return np.select([hh, h, ll, lw], [2, 1, -2, -1], 0).astype(np.int8)


def _flatline(table: RuleTable, st: RuleState, g: Groups, ts: I64, v: F64) -> Changes:
    """Values that stopped moving: level 1 after suspect time, 2 after fail time."""
    p = g.point
    prev = g.previous(v, st.last_v)
    with np.errstate(invalid="ignore"):
        moved = ~(np.abs(v - prev) <= g.of(table.flat_tol))   # NaN prev: a fresh start
    at, inside = g.carry(moved)
    since = np.where(inside, ts[at], g.of(st.flat_since))
    since = np.where(since < 0, ts, since)
    last_move = np.where(inside, ts[at], g.of(st.last_change))
    g.store(st.flat_since, since)
    g.store(st.last_change, last_move)
    if g.singletons:
        # one reading per point: only a run past the suspect time, or a point flagged now,
        # can change anything
        sus_all = g.of(table.flat_suspect_ms)
        keep = ((sus_all > 0) & (ts - since >= sus_all)) | (g.of(st.flat) != 0)
        if not keep.all():
            g, ts, v, since = g.subset(keep), ts[keep], v[keep], since[keep]
            p = g.point
    sus, fail = table.flat_suspect_ms[p], table.flat_fail_ms[p]
    dur = ts - since
    level = np.where((fail > 0) & (dur >= fail), 2,
                     np.where((sus > 0) & (dur >= sus), 1, 0)).astype(np.int8)
    need = table.flat_require_related[p]
    if need.any():
        level = np.where(need & ~_related_moving(table, st, p, ts - sus), 0, level).astype(np.int8)
    stamp = np.where(level == 2, since + fail, np.where(level == 1, since + sus, ts))
    return _changes(FLATLINE, len(table), g, ts, level, st.flat, v, stamp=stamp)


def _related_moving(table: RuleTable, st: RuleState, p: npt.NDArray[np.int32], after: I64,
                    ) -> npt.NDArray[np.bool_]:
    """Whether any related point of ``p`` moved after ``after`` (as the state knows now):
    the configured ``related`` list, else the other points of the same equipment."""
    latest = np.full(len(table), -1, np.int64)
    ptr, idx = table.related_ptr, table.related_idx
    has = np.diff(ptr) > 0
    if has.any():
        latest[has] = np.maximum.reduceat(st.last_change[idx], ptr[:-1][has])
    # Same equipment: the group's latest change, or its second latest for the point that
    # made the latest (a point does not vouch for itself).
    grp = table.equipment_group
    n_groups = int(grp.max()) + 1 if len(grp) else 0
    first = np.full(n_groups, -1, np.int64)
    np.maximum.at(first, grp, st.last_change)
    is_top = st.last_change == first[grp]
    top_count = np.bincount(grp[is_top], minlength=n_groups)
    second = np.full(n_groups, -1, np.int64)
    np.maximum.at(second, grp[~is_top], st.last_change[~is_top])
    second = np.where(top_count > 1, first, second)
    others = np.where(is_top, second[grp], first[grp])
    latest = np.where(table.explicit_related, latest, others)
    return latest[p] > after


def _tamper(table: RuleTable, st: RuleState, g: Groups, ts: I64, v: F64) -> Changes:
    """A sudden drop to the bottom of the range (covered or pulled probe)."""
    p = g.point
    if g.singletons:
        # one reading per point: only a reading at the bottom of the range, or a point
        # flagged now, can change anything
        with np.errstate(invalid="ignore"):
            keep = (v <= g.of(table.tamper_zero)) | (g.of(st.tamper) != 0)
        if not keep.all():
            g, ts, v = g.subset(keep), ts[keep], v[keep]
            p = g.point
    frm, zero = table.tamper_from[p], table.tamper_zero[p]
    prev_v = g.previous(v, st.last_v)
    prev_t = g.previous(ts, st.last_valid_ts)
    with np.errstate(invalid="ignore"):
        drop = (v <= zero) & (prev_v >= frm) & (ts - prev_t <= table.tamper_within_ms[p]) \
            & (prev_t >= 0)
        back_up = v >= frm
    level = switch(g, drop, back_up & ~drop, st.tamper > 0).astype(np.int8)
    return _changes(TAMPER, len(table), g, ts, level, st.tamper, v, zero)


def votes(table: RuleTable, st: RuleState, changes: Changes, before: I8) -> Changes:
    """k-out-of-n votes over the process-level changes, in time order (changes are few, so
    they are walked one by one). ``before`` holds the process levels before the batch."""
    n = len(table)
    proc = np.flatnonzero(changes.slot < n)          # PROCESS is type 0: slot = point
    current: dict[int, int] = {}
    rows: list[tuple[int, int, int]] = []
    for i in proc.tolist():
        pt = int(changes.slot[i])
        new_level = int(changes.level[i])
        old_level = current.get(pt, int(before[pt]))
        current[pt] = new_level
        for vi in table.vote_members.get(pt, ()):
            need = table.votes[vi].level
            was, now = old_level >= need, new_level >= need
            if was == now:
                continue
            st.vote_count[vi] += 1 if now else -1
            active = int(st.vote_count[vi] >= table.votes[vi].k)
            if active != st.vote_level[vi]:
                st.vote_level[vi] = active
                rows.append((POINT_TYPES * n + vi, int(changes.ts[i]), active))
    if not rows:
        return Changes.join([])
    arr = np.array(rows, dtype=np.int64)
    nan = np.full(len(rows), np.nan)
    return Changes(arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int8), nan, nan, nan)


def tick(table: RuleTable, st: RuleState, now_ms: int) -> Changes:
    """Clock-driven conditions: points silent beyond their stale time."""
    n = len(table)
    if st.origin_ts < 0:
        st.origin_ts = now_ms
    last = np.where(st.last_ts >= 0, st.last_ts, st.origin_ts)
    due = (table.stale_ms > 0) & (st.stale == 0) & (now_ms - last > table.stale_ms)
    at = np.flatnonzero(due)
    st.stale[at] = 1
    nan = np.full(len(at), np.nan)
    return Changes(STALE * n + at.astype(np.int64), last[at] + table.stale_ms[at],
                   np.ones(len(at), np.int8), nan, nan,
                   np.where(st.comm[at] != 0, MASKED, nan))
