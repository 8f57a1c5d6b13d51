"""The core's state on disk, so that a restart remembers its alarms and its edges.

One file per enterprise and MQTT client id (``<state_dir>/<enterprise>-<client id>.npz``):
the engine's snapshot (``alerting.snapshot``) and the sequence numbers of every message
acknowledged to the broker. Written every ``state_every_s`` and at a clean stop, atomically
(a new file fsynced, then renamed over the old), in a worker thread; read once at start.

What it covers: alarm states, acknowledgements, shelving with its expiry, out of service,
latches, delay timers and windows as of the last save. Messages acknowledged after it are
not redelivered, so a crash can lose at most ``state_every_s`` of alarm-state changes
(readings are never lost: they were written before being acknowledged); messages
redelivered after a crash are evaluated again, which level alarms take as no change.
No pickle: arrays as ``.npy`` members, everything else as one JSON member.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from alerting.snapshot import Snapshot, SnapshotError, capture, restore
from gateway.stream.core import Core
from gateway.stream.sequence import SequenceTracker

log = logging.getLogger(__name__)

_META = "meta.json"


def state_path(state_dir: Path, enterprise: str, client_id: str) -> Path:
    """Where one core keeps its state."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client_id)
    return state_dir / f"{enterprise}-{safe}.npz"


def save(path: Path, snap: Snapshot, sequences: dict[str, Any], saved_ms: int) -> None:
    """Write atomically (blocking: call from a worker thread)."""
    meta = {k: v for k, v in snap.items() if not isinstance(v, np.ndarray)}
    meta["points"] = [str(x) for x in snap["points"].tolist()]
    meta["votes"] = [str(x) for x in snap["votes"].tolist()]
    meta["shelved_until"] = {str(k): v for k, v in snap["shelved_until"].items()}
    meta["chattering"] = {str(k): v for k, v in snap["chattering"].items()}
    meta["sequences"] = sequences
    meta["saved_ms"] = saved_ms
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr(_META, orjson.dumps(meta))
        for k, v in snap.items():
            if isinstance(v, np.ndarray) and v.dtype != object:
                buf = io.BytesIO()
                np.save(buf, v, allow_pickle=False)
                z.writestr(f"{k}.npy", buf.getvalue())
    with tmp.open("rb+") as done:
        os.fsync(done.fileno())
    os.replace(tmp, path)


def load(path: Path) -> tuple[Snapshot, dict[str, Any], int] | None:
    """(snapshot, sequences, saved at) from ``path``; None if there is none. A damaged file
    is said and ignored (the core starts fresh) rather than stopping the gateway."""
    if not path.exists():
        return None
    try:
        with zipfile.ZipFile(path) as z:
            meta = orjson.loads(z.read(_META))
            snap: Snapshot = {k: v for k, v in meta.items()
                              if k not in ("sequences", "saved_ms")}
            snap["points"] = np.asarray(meta["points"], dtype=object)
            snap["votes"] = np.asarray(meta["votes"], dtype=object)
            snap["shelved_until"] = {int(k): int(v) for k, v in meta["shelved_until"].items()}
            snap["chattering"] = {int(k): int(v) for k, v in meta["chattering"].items()}
            for name in z.namelist():
                if name.endswith(".npy"):
                    snap[name[:-4]] = np.load(io.BytesIO(z.read(name)), allow_pickle=False)
        return snap, dict(meta["sequences"]), int(meta["saved_ms"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        log.error("state: %s is damaged (%s): starting without it", path, exc)
        return None


class StateKeeper:
    """Restores one core's state at start and saves it while it runs."""

    def __init__(self, path: Path, core: Core) -> None:
        self.path = path
        self.core = core

    async def restore(self) -> bool:
        """Load and apply the saved state, if any; False when starting fresh."""
        loaded = await asyncio.to_thread(load, self.path)
        if loaded is None:
            return False
        snap, sequences, saved_ms = loaded
        core = self.core
        try:
            points = restore(core.engine, snap, core.clock.now_ms())
        except SnapshotError as exc:
            log.error("state: %s cannot be used (%s): starting without it", self.path, exc)
            return False
        core.sequences = SequenceTracker.from_state(sequences)
        core.acked_sequences = sequences
        standing = len(core.standing())
        log.info("state: restored %d points' alarm state (%d alarms standing) and %d edges' "
                 "sequence numbers, saved %.0f s before (%s)", points, standing,
                 len(sequences), (core.clock.now_ms() - saved_ms) / 1000, self.path)
        return True

    async def save(self) -> None:
        """Capture on the loop (the engine's owner), write in a worker thread."""
        snap = capture(self.core.engine)
        await asyncio.to_thread(save, self.path, snap, self.core.acked_sequences,
                                self.core.clock.now_ms())
