"""The engine's alarm state as plain arrays, to survive a restart (pure: no I/O here).

``capture`` copies what the engine knows that matters across a restart: every alarm slot's
lifecycle (state, condition, value, since; shelving with its expiry; chattering), the rule
memory of each point (hysteresis levels, delay timers, latches, stale/fault/flatline/tamper
states, last values and times, sample windows and trend sums) and the votes, keyed by point
id and vote name. ``restore`` puts it back into an engine built from the same or a changed
config: points and votes that still exist get their state, new ones start fresh, removed
ones are forgotten. Console flood windows are not kept (they refill in minutes).

The format is versioned (``VERSION``); a snapshot of another version is refused whole.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

from alerting.engine import Engine
from alerting.state import RuleState
from alerting.table import POINT_TYPES

VERSION = 3
# version 1 had no peak / acknowledged levels (derived on restore); 1 and 2 had no devices
# (their off line alarms start fresh)
READS = (1, 2, 3)
Snapshot = dict[str, Any]

_VOTE_FIELDS = ("vote_count", "vote_level")
_DEVICE_FIELDS = ("dev_count", "dev_level")
_SLOT_FIELDS = ("state", "condition", "since", "value", "peak", "acked")


class SnapshotError(ValueError):
    """A snapshot this engine cannot take (another version, or damaged)."""


def _rule_fields() -> list[str]:
    """The array fields of the rule memory (all but the two scalar epochs)."""
    return [k for k in RuleState.__dataclass_fields__ if k not in ("origin_ts", "tr_epoch")]


_NAMES: weakref.WeakKeyDictionary[Engine, tuple[npt.NDArray[Any], ...]] = \
    weakref.WeakKeyDictionary()


def _copy(src: npt.NDArray[Any], into: Snapshot | None, key: str) -> npt.NDArray[Any]:
    old = into.get(key) if into is not None else None
    if isinstance(old, np.ndarray) and old.shape == src.shape and old.dtype == src.dtype:
        np.copyto(old, src)
        return old
    return np.array(src, copy=True)


def capture(engine: Engine, into: Snapshot | None = None) -> Snapshot:
    """A copy of the engine's state (taken on the loop that owns the engine); safe to write
    out from another thread afterwards. ``into``, a snapshot no longer needed, lends its
    arrays: at 100 000 points the state is ~50 MB, and copying into fresh memory (page
    faults and zeroing on every page) took 80–110 ms against ~10 ms into memory reused."""
    st, lc = engine.state, engine.lifecycle
    names = _NAMES.get(engine)
    if names is None:       # an engine's names never change: shared by its snapshots
        names = _NAMES[engine] = (
            np.asarray(engine.table.names, dtype=object),
            np.asarray([v.name for v in engine.table.votes], dtype=object),
            np.asarray([d.name for d in engine.table.devices], dtype=object))
    snap: Snapshot = {
        "version": VERSION,
        "points": names[0], "votes": names[1], "devices": names[2],
        "origin_ts": st.origin_ts, "tr_epoch": st.tr_epoch,
        "suppressed": _copy(engine._suppressed, into, "suppressed"),
        "shelved_until": dict(lc.shelved_until), "chattering": dict(lc.chattering),
        # the window sizes the trend sums were kept over (the table's: never changes)
        "trend_k": engine.table.trend_k,
    }
    for k in _rule_fields():
        snap[f"rule.{k}"] = _copy(getattr(st, k), into, f"rule.{k}")
    for k in _SLOT_FIELDS:
        snap[f"life.{k}"] = _copy(getattr(lc, k), into, f"life.{k}")
    return snap


def _positions(old: npt.NDArray[Any], new: list[str]) -> tuple[npt.NDArray[np.intp],
                                                              npt.NDArray[np.intp]]:
    """(positions in old, positions in new) of the names both have."""
    where = {str(name): i for i, name in enumerate(old.tolist())}
    pairs = [(where[name], j) for j, name in enumerate(new) if name in where]
    if not pairs:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    a, b = zip(*pairs, strict=True)
    return np.asarray(a, np.intp), np.asarray(b, np.intp)


def _restore_windows(engine: Engine, snap: Snapshot, old_p: npt.NDArray[np.intp],
                     new_p: npt.NDArray[np.intp]) -> None:
    """The sample rings and trend sums. When the ring's size changed (a config with other
    windows or another number of points: ``alerting.table.ring_capacity``) the newest samples
    are laid into the new ring; where the ring or a point's trend window changed, its sums are
    fitted again over what the ring holds, so they match what the rules will remove later."""
    st = engine.state
    ring, ring_n = snap["rule.ring"], snap["rule.ring_n"]
    old_cap, cap = ring.shape[1], st.ring.shape[1]
    old_k = snap.get("trend_k")
    if old_cap == cap:
        st.ring[new_p] = ring[old_p]
        st.ring_n[new_p] = ring_n[old_p]
        if old_k is None:
            return
        changed = new_p[old_k[old_p] != engine.table.trend_k[new_p]]
    else:
        m = np.minimum(ring_n[old_p], min(old_cap, cap))
        lags = np.arange(1, min(old_cap, cap) + 1)
        have = lags[None, :] <= m[:, None]
        src = (ring_n[old_p][:, None] - lags[None, :]) & (old_cap - 1)
        dst = (m[:, None] - lags[None, :]) & (cap - 1)
        rows_new = np.broadcast_to(new_p[:, None], have.shape)[have]
        rows_old = np.broadcast_to(old_p[:, None], have.shape)[have]
        st.ring[rows_new, dst[have]] = ring[rows_old, src[have]]
        st.ring_n[new_p] = m
        changed = new_p
    _refit(engine, changed)


def _refit(engine: Engine, pts: npt.NDArray[np.intp]) -> None:
    """Trend sums of ``pts`` over their last k samples in the ring (x from the epoch)."""
    st, tb = engine.state, engine.table
    if len(pts) == 0:
        return
    cap = st.ring.shape[1]
    k = np.minimum(np.minimum(tb.trend_k[pts], st.ring_n[pts]), cap)
    lags = np.arange(1, cap + 1)
    have = lags[None, :] <= k[:, None]
    pos = (st.ring_n[pts][:, None] - lags[None, :]) & (cap - 1)
    t = st.ring[pts[:, None], pos, 0]
    v = st.ring[pts[:, None], pos, 1]
    x = np.where(have, (t - st.tr_epoch) / 1000.0, 0.0)
    v = np.where(have, v, 0.0)
    st.tr[pts] = np.stack([have.sum(axis=1), x.sum(axis=1), v.sum(axis=1),
                           (x * x).sum(axis=1), (x * v).sum(axis=1), (v * v).sum(axis=1)],
                          axis=1)


def restore(engine: Engine, snap: Snapshot, now_ms: int | None = None) -> int:
    """Put a captured state back; returns how many points were restored. With ``now_ms``,
    points that had reported are treated as heard from at the restart: the time the gateway
    was down does not make them stale (their edges' backlog is on its way)."""
    if snap.get("version") not in READS:
        raise SnapshotError(f"snapshot version {snap.get('version')!r}, this engine reads "
                            f"{', '.join(map(str, READS))}")
    if snap["version"] < 3:
        # no devices then: each point had not heard of its device not answering
        snap = dict(snap, **{"devices": np.zeros(0, dtype=object),
                             "rule.comm": np.zeros(len(snap["points"]), np.int8),
                             "rule.dev_count": np.zeros(0, np.int32),
                             "rule.dev_level": np.zeros(0, np.int8)})
    if snap["version"] == 1:
        # an alarm standing at its condition's level; acknowledged at it when ACK
        snap = dict(snap, **{"life.peak": snap["life.condition"].copy(),
                             "life.acked": np.where(snap["life.state"] == 2,
                                                    np.abs(snap["life.condition"]),
                                                    0).astype(np.int8)})
    tb, st, lc = engine.table, engine.state, engine.lifecycle
    n_new = len(tb)
    old_p, new_p = _positions(snap["points"], list(tb.names))
    old_v, new_v = _positions(snap["votes"], [v.name for v in tb.votes])
    old_d, new_d = _positions(snap["devices"], [d.name for d in tb.devices])
    n_old = len(snap["points"])
    try:
        for k in _rule_fields():
            src, dst = snap[f"rule.{k}"], getattr(st, k)
            if k in ("ring", "ring_n"):
                continue                   # below: the ring may have another size now
            if k in _VOTE_FIELDS:
                dst[new_v] = src[old_v]
            elif k in _DEVICE_FIELDS:
                dst[new_d] = src[old_d]
            elif k == "proc_since":
                dst[:, new_p] = src[:, old_p]
            else:
                dst[new_p] = src[old_p]
        # slots: POINT_TYPES blocks of one per point, then one per vote
        nv_old = len(snap["votes"])
        old_slots = np.concatenate([t * n_old + old_p for t in range(POINT_TYPES)]
                                   + [POINT_TYPES * n_old + old_v,
                                      POINT_TYPES * n_old + nv_old + old_d])
        new_slots = np.concatenate([t * n_new + new_p for t in range(POINT_TYPES)]
                                   + [POINT_TYPES * n_new + new_v,
                                      tb.first_device_slot + new_d])
        for k in _SLOT_FIELDS:
            getattr(lc, k)[new_slots] = snap[f"life.{k}"][old_slots]
        slot_map = dict(zip(old_slots.tolist(), new_slots.tolist(), strict=True))
        lc.shelved_until = {slot_map[s]: int(t) for s, t in snap["shelved_until"].items()
                            if s in slot_map}
        lc.chattering = {slot_map[s]: int(t) for s, t in snap["chattering"].items()
                         if s in slot_map}
        engine._suppressed[new_p] = snap["suppressed"][old_p]
        st.tr_epoch = int(snap["tr_epoch"])          # the sums' x are seconds since it
        _restore_windows(engine, snap, old_p, new_p)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise SnapshotError(f"snapshot does not fit: {exc}") from None
    if snap["origin_ts"] >= 0:
        st.origin_ts = int(snap["origin_ts"]) if st.origin_ts < 0 \
            else min(st.origin_ts, int(snap["origin_ts"]))
    if now_ms is not None:
        heard = st.last_ts >= 0
        st.last_ts[heard] = np.maximum(st.last_ts[heard], now_ms)
    return len(new_p)
