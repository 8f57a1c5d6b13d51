"""Windowed rules over each point's recent samples: rate of change and the trend forecast.

The last ``table.k_max`` valid samples of every point live in a ring buffer (a power of two
sized from the windows within a memory budget: ``alerting.table.ring_capacity``); a reading's j-th
predecessor comes from the batch when the batch holds it, else from the ring. Windows are
counted in samples (sized from the poll interval when compiled), so memory stays fixed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerting.grouping import Groups, switch
from alerting.state import RuleState
from alerting.table import RuleTable

F64 = npt.NDArray[np.float64]
IDX = npt.NDArray[np.intp]
# The ring's size K is a power of two, so "mod K" is a bit mask (several times faster on
# int64, and two's complement makes it right for negative numbers too)
# a point's six trend sums as one 48-byte item: whole rows move by 1-D take/put, which is
# several times faster than fancy-indexing rows of a 2-D array
_ROW = np.dtype((np.void, 6 * 8))


def back(g: Groups, st: RuleState, ts: npt.NDArray[np.int64], v: F64, sub: IDX | None,
         lag: IDX) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
    """(ts in ms, value, available) of the ``lag``-th predecessor (lag ≥ 1) of the grouped
    readings at positions ``sub`` (None: all of them): from the batch when it holds it, else
    from the ring."""
    if sub is None:
        sub = np.arange(len(g))
        p = g.point
        have = g.of(st.ring_n)
    else:
        p = g.point[sub]
        have = st.ring_n[p]
    # (t, v) pairs seen as one complex number each: a 1-D take fetches both in one go,
    # several times faster than fancy-indexing rows of a 2-D array
    ring = st.ring.reshape(-1).view(np.complex128)
    cap = st.ring.shape[1]
    wrap = cap - 1
    if g.singletons:                                 # nothing earlier in this batch
        tv = ring.take(p * cap + ((have - lag) & wrap))
        return tv.real, tv.imag, (have >= lag) & (lag <= cap)
    rank = g.rank[sub]
    in_batch = rank >= lag
    bi = np.maximum(sub - lag, 0)
    m = lag - rank                                   # how far back into the ring
    ok_ring = (~in_batch) & (have >= m) & (m <= cap)
    tv = ring.take(p * cap + ((have - m) & wrap))
    t_out = np.where(in_batch, ts[bi], tv.real)
    v_out = np.where(in_batch, v[bi], tv.imag)
    return t_out, v_out, in_batch | ok_ring


def rate_of_change(table: RuleTable, st: RuleState, g: Groups, ts: npt.NDArray[np.int64],
                   v: F64) -> tuple[npt.NDArray[np.int8], F64]:
    """ROC level per reading (+1 rising beyond its limit, -1 falling, 0 otherwise) and the
    limit in units per minute.

    ROC = (PV − PV k samples ago) / elapsed, per second; it resets below 80 % of the limit.
    """
    n = len(g)
    p = g.point
    k = g.of(table.roc_k)
    t0, v0, ok = back(g, st, ts, v, None, np.maximum(k, 1))
    dt = (ts - t0) / 1000.0
    level = np.zeros(n, np.int8)
    limit = np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(ok & (k > 0) & (dt > 0), (v - v0) / dt, np.nan)
        sub = np.arange(n)
        if g.singletons:
            # one reading per point: only a rate near a limit, or a point alarming now, can
            # change anything
            cand = (np.abs(rate) >= 0.8 * g.of(table.roc_min)) | (g.of(st.roc) != 0)
            sub = np.flatnonzero(cand)
            gs = g.subset(cand)
        else:
            gs = g
        r, ps = rate[sub], p[sub]
        rise, fall = table.roc_rise[ps], table.roc_fall[ps]
        decided = ~np.isnan(r)
        up = switch(gs, decided & (r >= rise), decided & ~(r >= 0.8 * rise), st.roc > 0)
        down = switch(gs, decided & (r <= -fall), decided & ~(r <= -0.8 * fall), st.roc < 0)
    lvl = np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)
    level[sub] = lvl
    limit[sub] = np.where(lvl >= 0, rise, -fall) * 60
    return level, limit


def trend_forecast(table: RuleTable, st: RuleState, g: Groups, ts: npt.NDArray[np.int64],
                   v: F64) -> tuple[npt.NDArray[np.int8], F64, F64]:
    """Predictive level per reading (+1 toward a high limit, -1 toward a low one, 0 none),
    the limit it heads for and the forecast seconds until it gets there.

    A least-squares line over the point's last k samples (k from its window) is extrapolated
    to the nearest limit beyond the fitted value; a warning while that is nearer than the
    horizon, reset beyond 125 % of it.
    """
    n = len(g)
    level = np.zeros(n, np.int8)
    target = np.full(n, np.nan)
    secs = np.full(n, np.nan)
    k_all = g.of(table.trend_k)
    has = k_all > 0
    if has.all():                       # every point trends: no subset to copy out
        sub, p, k = np.arange(n), g.point, k_all
        cnt, sx, sy, sxx, sxy, syy, x_now = _window_sums(g, st, ts, v, None, k)
    else:
        sub = np.flatnonzero(has)
        if len(sub) == 0:
            return level, target, secs
        p, k = g.point[sub], k_all[sub]
        cnt, sx, sy, sxx, sxy, syy, x_now = _window_sums(g, st, ts, v, sub, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = cnt * sxx - sx * sx
        slope = np.where(den > 0, (cnt * sxy - sx * sy) / den, 0.0)
        fit = (sy + slope * (cnt * x_now - sx)) / cnt      # the line at this reading
        # A forecast needs a real trend: the slope at least SLOPE_T standard errors from zero
        # (noise alone must not warn) over samples spanning half the window or more
        sxx_c = den / cnt
        resid = np.maximum(syy - sy * sy / cnt - slope * slope * sxx_c, 0.0) / (cnt - 2)
        significant = slope * slope * sxx_c >= SLOPE_T * SLOPE_T * resid
        # (or fill all k samples: a long window at a fast poll is capped at the ring's size)
        spans = ((x_now - sx / cnt) * 2 >= 0.5 * table.trend_window_s[p]) | (cnt >= k)
        trend = significant & spans
        slope = np.where(trend, slope, 0.0)
        if g.singletons:
            # one reading per point: a reading without a trend, of a point not warning now,
            # cannot change anything (its level stays 0), so the forecast skips it
            c = np.flatnonzero(trend | (st.pred[p] != 0))
            sub, p, fit, slope, cnt = sub[c], p[c], fit[c], slope[c], cnt[c]
        hi_t = _nearest_above(fit, table.hi[p], table.hihi[p])
        lo_t = _nearest_below(fit, table.lo[p], table.lolo[p])
        t_up = np.where(slope > 0, (hi_t - fit) / slope, np.inf)
        t_dn = np.where(slope < 0, (lo_t - fit) / slope, np.inf)
    t_up = np.where(np.isnan(t_up), np.inf, t_up)
    t_dn = np.where(np.isnan(t_dn), np.inf, t_dn)
    horizon = table.trend_horizon_ms[p] / 1000.0
    enough = cnt >= table.trend_min[p]
    ok_up = enough & (t_up <= horizon)
    ok_dn = enough & (t_dn <= horizon)
    full_up = np.zeros(n, bool)
    full_dn = np.zeros(n, bool)
    rst_up = np.zeros(n, bool)
    rst_dn = np.zeros(n, bool)
    full_up[sub] = ok_up
    full_dn[sub] = ok_dn & ~ok_up
    rst_up[sub] = enough & (t_up > 1.25 * horizon)
    rst_dn[sub] = enough & (t_dn > 1.25 * horizon)
    up = switch(g, full_up, rst_up & ~full_up, st.pred > 0)
    dn = switch(g, full_dn, rst_dn & ~full_dn, st.pred < 0)
    level = np.where(up, 1, np.where(dn, -1, 0)).astype(np.int8)
    target[sub] = np.where(t_up <= t_dn, hi_t, lo_t)
    secs[sub] = np.minimum(t_up, t_dn)
    return level, target, secs


REBASE_AFTER_MS = 86_400_000
SLOPE_T = 3.0


def _window_sums(g: Groups, st: RuleState, ts: npt.NDArray[np.int64], v: F64,
                 sub: IDX | None, k: IDX) -> tuple[F64, F64, F64, F64, F64, F64, F64]:
    """Least-squares sums (n, Σx, Σv, Σx², Σxv, Σv²) over each reading's last k samples, and
    the reading's own x.

    Kept incrementally per point: each reading adds itself and removes its k-th predecessor,
    so a reading costs one look-up, not k. x is seconds since an engine-wide epoch that moves
    once a day (all sums re-based exactly), which keeps x² small enough for float64.
    """
    if st.tr_epoch < 0:
        st.tr_epoch = int(ts.min())
    elif int(ts.max()) - st.tr_epoch > REBASE_AFTER_MS:
        _rebase(st, int(ts.max()) - REBASE_AFTER_MS // 2)
    p = g.point if sub is None else g.point[sub]
    epoch = st.tr_epoch
    x = ((ts if sub is None else ts[sub]) - epoch) / 1000.0
    t_out, v_out, ok = back(g, st, ts, v, sub, k)
    ok &= k > 0
    xo = np.where(ok, (t_out - epoch) / 1000.0, 0.0)
    vo = np.where(ok, v_out, 0.0)
    vs = v if sub is None else v[sub]
    # each reading adds itself and takes away its outgoing sample, column by column in place
    deltas = np.empty((len(p), 6))
    np.subtract(1.0, ok, out=deltas[:, 0])
    np.subtract(x, xo, out=deltas[:, 1])
    np.subtract(vs, vo, out=deltas[:, 2])
    np.subtract(x * x, xo * xo, out=deltas[:, 3])
    np.subtract(x * vs, xo * vo, out=deltas[:, 4])
    np.subtract(vs * vs, vo * vo, out=deltas[:, 5])
    if not g.singletons:
        sub = np.arange(len(g)) if sub is None else sub
        starts = np.flatnonzero(g.first[sub])
        sizes = np.diff(np.append(starts, len(sub)))
        cs = np.cumsum(deltas, axis=0)
        deltas = cs - np.repeat(cs[starts] - deltas[starts], sizes, axis=0)
    span = g.span if sub is None else None
    out = np.add(st.tr[span] if span is not None else st.tr.take(p, axis=0), deltas,
                 out=deltas)
    rows = st.tr.view(_ROW).reshape(-1)
    if span is not None:
        st.tr[span] = out
    elif g.singletons:
        rows.put(p, out.view(_ROW).reshape(-1))
    else:
        last = g.last if sub is None else g.last[sub]
        rows.put(p[last], np.ascontiguousarray(out[last]).view(_ROW).reshape(-1))
    return out[:, 0], out[:, 1], out[:, 2], out[:, 3], out[:, 4], out[:, 5], x


def _rebase(st: RuleState, epoch: int) -> None:
    """Move every point's sums to a later epoch (x' = x − Δ), exactly."""
    d = (epoch - st.tr_epoch) / 1000.0
    n, sx, sv = st.tr[:, 0], st.tr[:, 1].copy(), st.tr[:, 2]
    st.tr[:, 3] += n * d * d - 2 * d * sx
    st.tr[:, 4] -= d * sv
    st.tr[:, 1] = sx - n * d
    st.tr_epoch = epoch


def _nearest_above(x: F64, a: F64, b: F64) -> F64:
    """The smaller of the limits a, b that lie above x (NaN if none)."""
    ca = np.where(a > x, a, np.inf)
    cb = np.where(b > x, b, np.inf)
    out = np.minimum(ca, cb)
    return np.where(np.isinf(out), np.nan, out)


def _nearest_below(x: F64, a: F64, b: F64) -> F64:
    """The larger of the limits a, b that lie below x (NaN if none)."""
    ca = np.where(a < x, a, -np.inf)
    cb = np.where(b < x, b, -np.inf)
    out = np.maximum(ca, cb)
    return np.where(np.isinf(out), np.nan, out)


def update_ring(st: RuleState, g: Groups, ts: npt.NDArray[np.int64], v: F64) -> None:
    """Remember each point's last samples of this batch (as many as the ring holds)."""
    if len(g) == 0:
        return
    cap = st.ring.shape[1]
    if g.singletons:
        p = g.point
        flat = p * cap + (g.of(st.ring_n) & (cap - 1))
        st.ring.reshape(-1).view(np.complex128)[flat] = ts + 1j * v
        if g.span is not None:
            st.ring_n[g.span] += 1
        else:
            st.ring_n[p] += 1
        return
    ends = np.flatnonzero(g.last)
    group_size = np.repeat(g.rank[ends] + 1, np.diff(np.concatenate(([0], ends + 1))))
    keep = g.rank >= group_size - cap
    p = g.point[keep]
    slot = (st.ring_n[p] + g.rank[keep]) & (cap - 1)
    st.ring[p, slot, 0] = ts[keep]
    st.ring[p, slot, 1] = v[keep]
    st.ring_n[g.point[ends]] += group_size[ends]
