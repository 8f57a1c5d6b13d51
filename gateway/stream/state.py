"""The core's state on disk, so that a restart remembers its alarms and its edges.

One file per enterprise and MQTT client id (``<state_dir>/<enterprise>-<client id>.npz``):
the engine's snapshot (``alerting.snapshot``) and the sequence numbers of every message it
has seen. Saved every ``state_every_s`` when something changed, and at a clean stop,
atomically (a new file fsynced, then renamed over the old), in a worker thread; read once
at start.

What it covers: alarm states, acknowledgements, shelving with its expiry, out of service,
latches, delay timers and windows. A snapshot is taken under the core's step lock, so it
is exactly the state after some step; it is written only once everything that step and
those before it produced is durable (written or spooled), and only then are their
messages acknowledged to the broker (``runtime.Acknowledgements``). After a crash the
broker delivers again just what the state has not seen (or what it has, which the
sequence numbers drop): alarm events are neither lost nor doubled.
No pickle: arrays as ``.npy`` members, everything else as one JSON member.
"""

from __future__ import annotations

import asyncio
import functools
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
from gateway.stream.runtime import Acknowledgements
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
    with tmp.open("wb") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            z.writestr(_META, orjson.dumps(meta))
            for k, v in snap.items():
                if isinstance(v, np.ndarray) and v.dtype != object:
                    # straight into the member: at 100 000 points the arrays are ~50 MB
                    with z.open(f"{k}.npy", "w", force_zip64=True) as m:
                        np.lib.format.write_array(m, v, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
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


def _resolve(f: asyncio.Future[None]) -> None:
    if not f.done():            # a save given up at the stop no longer waits for it
        f.set_result(None)


class StateKeeper:
    """Restores one core's state at start and saves it while it runs; with ``acks``, the
    messages a saved state covers are acknowledged after it is on disk."""

    def __init__(self, path: Path, core: Core, acks: Acknowledgements | None = None) -> None:
        self.path = path
        self.core = core
        self.acks = acks
        self._saved_version = -1
        self.saves = 0

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
        self._saved_version = core.version
        standing = len(core.standing())
        log.info("state: restored %d points' alarm state (%d alarms standing) and %d edges' "
                 "sequence numbers, saved %.0f s before (%s)", points, standing,
                 len(sequences), (core.clock.now_ms() - saved_ms) / 1000, self.path)
        return True

    async def save(self) -> None:
        """Capture under the step lock, wait until what came before is durable, write in a
        worker thread, then acknowledge what it covers. Nothing new: nothing written."""
        core, acks = self.core, self.acks
        async with core.step_lock:
            if core.version == self._saved_version and not (acks and acks.waiting):
                return
            version = core.version
            snap = capture(core.engine)
            sequences = core.sequences.state()
            tokens = acks.take() if acks is not None else []
            durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            core.writer.mark(functools.partial(_resolve, durable))
        try:
            await durable
            await asyncio.to_thread(save, self.path, snap, sequences, core.clock.now_ms())
        except BaseException:
            if acks is not None:
                acks.give_back(tokens)      # acknowledged after the next save instead
            raise
        self._saved_version = version
        self.saves += 1
        if acks is not None:
            acks.buffer.ack(tokens)
