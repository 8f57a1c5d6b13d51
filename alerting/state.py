"""Per-point and per-vote memory of the rules between batches (numpy arrays only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerting.table import RuleTable

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


@dataclass
class RuleState:
    """What each rule remembers of each point; -1 timestamps mean "never"."""

    proc_raw: I8          # hysteresis level before delays
    proc_rawbits: I8      # the same as bits per limit: 1 hi, 2 hihi, 4 lo, 8 lolo
    proc_since: I64       # (4, points): when each limit's raw state last changed
    proc_delayed: I8      # per-limit state after on/off delays, same bits
    proc_level: I8        # level after delays: what the alarm follows
    fault: I8
    roc: I8
    pred: I8
    flat: I8
    flat_since: I64       # start of the current run of unchanging values
    last_change: I64      # last time the value moved beyond the flatline tolerance
    tamper: I8
    stale: I8
    last_ts: I64          # last reading of any quality
    last_valid_ts: I64
    last_v: npt.NDArray[np.float64]
    # (points, table.k_max, 2) recent valid samples (ts in ms as float64: exact below 2**53, and
    # next to its value so one look-up fetches both)
    ring: npt.NDArray[np.float64]
    ring_n: I64           # valid samples ever written per point
    # trend sums n, Σx, Σv, Σx², Σxv, Σv² over each point's window (x: s since tr_epoch)
    tr: npt.NDArray[np.float64]   # (points, 6): one row each, so a reading costs one look-up
    vote_count: npt.NDArray[np.int32]
    vote_level: I8
    comm: I8              # 1: the point's last reading said its device did not answer
    dev_count: npt.NDArray[np.int32]   # per device: points whose device did not answer
    dev_level: I8         # per device: 1 off line
    origin_ts: int = -1   # first time seen: points that never report go stale from here
    tr_epoch: int = -1

    @staticmethod
    def fresh(table: RuleTable) -> RuleState:
        """Every point normal and without history."""
        n, nv, nd = len(table), len(table.votes), len(table.devices)

        def i8() -> I8:
            return np.zeros(n, np.int8)

        def never() -> I64:
            return np.full(n, -1, np.int64)

        return RuleState(
            proc_raw=i8(), proc_rawbits=i8(), proc_since=np.full((4, n), -1, np.int64),
            proc_delayed=i8(), proc_level=i8(), fault=i8(), roc=i8(),
            pred=i8(), flat=i8(), flat_since=never(), last_change=never(), tamper=i8(),
            stale=i8(), last_ts=never(), last_valid_ts=never(), last_v=np.full(n, np.nan),
            ring=np.zeros((n, table.k_max, 2)),
            ring_n=np.zeros(n, np.int64), tr=np.zeros((n, 6)),
            vote_count=np.zeros(nv, np.int32),
            vote_level=np.zeros(nv, np.int8), comm=i8(),
            dev_count=np.zeros(nd, np.int32), dev_level=np.zeros(nd, np.int8))

    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))
