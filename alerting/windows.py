"""Windowed rules over each point's recent samples: rate of change and the trend forecast.

The last ``K_MAX`` valid samples of every point live in a ring buffer; a reading's j-th
predecessor comes from the batch when the batch holds it, else from the ring. Windows are
counted in samples (sized from the poll interval when compiled), so memory stays fixed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerting.grouping import Groups, switch
from alerting.state import RuleState
from alerting.table import K_MAX, RuleTable

F64 = npt.NDArray[np.float64]
IDX = npt.NDArray[np.intp]


def back(g: Groups, st: RuleState, ts: npt.NDArray[np.int64], v: F64, sub: IDX, lag: IDX,
         ) -> tuple[npt.NDArray[np.int64], F64, npt.NDArray[np.bool_]]:
    """(ts, value, available) of the ``lag``-th predecessor (lag ≥ 1) of the grouped
    readings at positions ``sub``: from the batch when it holds it, else from the ring."""
    p = g.point[sub]
    have = st.ring_n[p]
    if g.singletons:                                 # nothing earlier in this batch
        flat = p * K_MAX + (have - lag) % K_MAX
        return (st.ring_t.reshape(-1).take(flat), st.ring_v.reshape(-1).take(flat),
                (have >= lag) & (lag <= K_MAX))
    rank = g.rank[sub]
    in_batch = rank >= lag
    bi = np.maximum(sub - lag, 0)
    m = lag - rank                                   # how far back into the ring
    ok_ring = (~in_batch) & (have >= m) & (m <= K_MAX)
    flat = p * K_MAX + (have - m) % K_MAX
    t_out = np.where(in_batch, ts[bi], st.ring_t.reshape(-1).take(flat))
    v_out = np.where(in_batch, v[bi], st.ring_v.reshape(-1).take(flat))
    return t_out, v_out, in_batch | ok_ring


def rate_of_change(table: RuleTable, st: RuleState, g: Groups, ts: npt.NDArray[np.int64],
                   v: F64) -> npt.NDArray[np.int8]:
    """ROC level per reading: +1 rising beyond its limit, -1 falling, 0 otherwise.

    ROC = (PV − PV k samples ago) / elapsed, per second; it resets below 80 % of the limit.
    """
    p = g.point
    k = table.roc_k[p]
    t0, v0, ok = back(g, st, ts, v, np.arange(len(g)), np.maximum(k, 1))
    dt = (ts - t0) / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(ok & (k > 0) & (dt > 0), (v - v0) / dt, np.nan)
        rise, fall = table.roc_rise[p], table.roc_fall[p]
        decided = ~np.isnan(rate)
        up = switch(g, decided & (rate >= rise), decided & ~(rate >= 0.8 * rise), st.roc > 0)
        down = switch(g, decided & (rate <= -fall), decided & ~(rate <= -0.8 * fall), st.roc < 0)
    return np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)


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
    sub = np.flatnonzero(table.trend_k[g.point] > 0)
    if len(sub) == 0:
        return level, target, secs
    p = g.point[sub]
    k = table.trend_k[p]
    cnt, sx, sy, sxx, sxy, x_now = _window_sums(g, st, ts, v, sub, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = cnt * sxx - sx * sx
        slope = np.where(den > 0, (cnt * sxy - sx * sy) / den, 0.0)
        fit = (sy + slope * (cnt * x_now - sx)) / cnt      # the line at this reading
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


def _window_sums(g: Groups, st: RuleState, ts: npt.NDArray[np.int64], v: F64, sub: IDX,
                 k: IDX) -> tuple[F64, F64, F64, F64, F64, F64]:
    """Least-squares sums (n, Σx, Σv, Σx², Σxv) over each reading's last k samples, and the
    reading's own x.

    Kept incrementally per point: each reading adds itself and removes its k-th predecessor,
    so a reading costs one look-up, not k. x is seconds from a per-point reference that
    moves to each batch's first reading (sums re-based exactly), keeping the numbers small.
    """
    p = g.point[sub]
    grp_first = g.first[sub]
    # each reading's group reference = ts of its group's first reading in this batch
    if g.singletons:
        ref = ts[sub]
    else:
        at = np.maximum.accumulate(np.where(grp_first, np.arange(len(sub)), 0))
        ref = ts[sub][at]
    shift = np.where(st.tr_ref[p] >= 0, (ref - st.tr_ref[p]) / 1000.0, 0.0)
    n0, sx0, sv0 = st.tr_n[p], st.tr_sx[p], st.tr_sv[p]
    sxx0 = st.tr_sxx[p] - 2 * shift * sx0 + n0 * shift * shift
    sxv0 = st.tr_sxv[p] - shift * sv0
    sx0 = sx0 - n0 * shift
    x = (ts[sub] - ref) / 1000.0
    t_out, v_out, ok = back(g, st, ts, v, sub, k)
    ok = ok & (k > 0)
    xo = np.where(ok, (t_out - ref) / 1000.0, 0.0)
    vo = np.where(ok, v_out, 0.0)
    deltas = [np.ones(len(sub)) - ok, x - xo, v[sub] - vo, x * x - xo * xo, x * v[sub] - xo * vo]
    if g.singletons:
        acc = deltas
    else:
        acc = []
        starts = np.flatnonzero(grp_first)
        for d in deltas:
            cs = np.cumsum(d)
            base = np.repeat(cs[starts] - d[starts], np.diff(np.append(starts, len(d))))
            acc.append(cs - base)
    out = (n0 + acc[0], sx0 + acc[1], sv0 + acc[2], sxx0 + acc[3], sxv0 + acc[4])
    last = g.last[sub]
    pl = p[last]
    st.tr_ref[pl] = ref[last]
    st.tr_n[pl], st.tr_sx[pl], st.tr_sv[pl] = out[0][last], out[1][last], out[2][last]
    st.tr_sxx[pl], st.tr_sxv[pl] = out[3][last], out[4][last]
    return (*out, x)


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
    """Remember each point's last K_MAX samples of this batch."""
    if len(g) == 0:
        return
    ends = np.flatnonzero(g.last)
    group_size = np.repeat(g.rank[ends] + 1, np.diff(np.concatenate(([0], ends + 1))))
    keep = g.rank >= group_size - K_MAX
    p = g.point[keep]
    slot = (st.ring_n[p] + g.rank[keep]) % K_MAX
    st.ring_t[p, slot] = ts[keep]
    st.ring_v[p, slot] = v[keep]
    st.ring_n[g.point[ends]] += group_size[ends]
