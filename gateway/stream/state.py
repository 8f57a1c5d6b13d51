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
import contextlib
import functools
import io
import logging
import os
import zipfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import orjson

from alerting.snapshot import Snapshot, SnapshotError, capture, restore
from gateway.stream.core import Core
from gateway.stream.runtime import Acknowledgements
from gateway.stream.sequence import SequenceTracker

log = logging.getLogger(__name__)

# snapshots waiting to be written at most (at 100 000 points each is ~50 MB in memory)
MAX_PENDING = 2

_META = "meta.json"


def state_path(state_dir: Path, enterprise: str, client_id: str) -> Path:
    """Where one core keeps its state."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client_id)
    return state_dir / f"{enterprise}-{safe}.npz"


_STRINGS: list[tuple[Any, list[str]]] = []      # (names array, as strings), the last few


def _strings(names: Any) -> list[str]:
    """The names as strings; an engine's snapshots share one array of names, so they are
    converted once (100 000 of them took ~20 ms of every save)."""
    for arr, strings in _STRINGS:
        if arr is names:
            return strings
    strings = [str(x) for x in names.tolist()]
    _STRINGS[:] = [(names, strings), *_STRINGS[:7]]
    return strings


def save(path: Path, snap: Snapshot, sequences: dict[str, Any], saved_ms: int,
         position: int | None = None) -> None:
    """Write atomically (blocking: call from a worker thread); ``position``: the stream
    sequence of the newest message the state covers (JetStream transport)."""
    meta = {k: v for k, v in snap.items() if not isinstance(v, np.ndarray)}
    meta["points"] = _strings(snap["points"])
    meta["votes"] = _strings(snap["votes"])
    meta["devices"] = _strings(snap["devices"])
    meta["shelved_until"] = {str(k): v for k, v in snap["shelved_until"].items()}
    meta["chattering"] = {str(k): v for k, v in snap["chattering"].items()}
    meta["sequences"] = sequences
    meta["saved_ms"] = saved_ms
    if position is not None:
        meta["stream_position"] = position
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


def load(path: Path) -> tuple[Snapshot, dict[str, Any], int, int | None] | None:
    """(snapshot, sequences, saved at, stream position or None) from ``path``; None if
    there is none. A damaged file
    is said and ignored (the core starts fresh) rather than stopping the gateway."""
    if not path.exists():
        return None
    try:
        with zipfile.ZipFile(path) as z:
            meta = orjson.loads(z.read(_META))
            snap: Snapshot = {k: v for k, v in meta.items()
                              if k not in ("sequences", "saved_ms", "stream_position")}
            snap["points"] = np.asarray(meta["points"], dtype=object)
            snap["votes"] = np.asarray(meta["votes"], dtype=object)
            if "devices" in meta:             # kept since snapshot version 3
                snap["devices"] = np.asarray(meta["devices"], dtype=object)
            snap["shelved_until"] = {int(k): int(v) for k, v in meta["shelved_until"].items()}
            snap["chattering"] = {int(k): int(v) for k, v in meta["chattering"].items()}
            for name in z.namelist():
                if name.endswith(".npy"):
                    snap[name[:-4]] = np.load(io.BytesIO(z.read(name)), allow_pickle=False)
        position = meta.get("stream_position")
        return snap, dict(meta["sequences"]), int(meta["saved_ms"]), \
            None if position is None else int(position)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        log.error("state: %s is damaged (%s): starting without it", path, exc)
        return None


@runtime_checkable
class MarksDurable(Protocol):
    """An alarm sink that says when what it was given is durable (JetStream alarms)."""

    def mark(self, done: Callable[[], None]) -> None: ...


def _resolve(f: asyncio.Future[None]) -> None:
    if not f.done():            # a save given up at the stop no longer waits for it
        f.set_result(None)


@dataclass
class _Capture:
    """A snapshot taken, waiting for what came before it to be durable."""

    version: int
    snap: Snapshot
    sequences: dict[str, Any]
    tokens: list[int]
    durable: asyncio.Future[Any]
    position: int | None


class StateKeeper:
    """Restores one core's state at start and saves it while it runs; with ``acks``, the
    messages a saved state covers are acknowledged after it is on disk.

    Taking a snapshot and writing it are two loops, so that acknowledgements do not wait
    for one save after another: ``capture`` (every ``state_every_s``) takes one while at
    most ``MAX_PENDING`` wait; ``write_step`` waits until the oldest is durable and writes
    the newest that is, acknowledging everything up to it (an older one would only be
    overwritten)."""

    def __init__(self, path: Path, core: Core, acks: Acknowledgements | None = None) -> None:
        self.path = path
        self.core = core
        self.acks = acks
        self._captured_version = -1
        self._pending: deque[_Capture] = deque()
        self._free: list[Snapshot] = []
        self._wake = asyncio.Event()
        self.saves = 0
        # JetStream transport: the tokens are stream sequences, and the newest one a state
        # covers is saved with it (the next owner replays the stream from there)
        self.positions = False
        self.position: int | None = None

    async def restore(self) -> bool:
        """Load and apply the saved state, if any; False when starting fresh."""
        loaded = await asyncio.to_thread(load, self.path)
        if loaded is None:
            return False
        snap, sequences, saved_ms, position = loaded
        core = self.core
        try:
            points = restore(core.engine, snap, core.clock.now_ms())
        except SnapshotError as exc:
            log.error("state: %s cannot be used (%s): starting without it", self.path, exc)
            return False
        core.sequences = SequenceTracker.from_state(sequences)
        self.position = position
        self._captured_version = core.version
        standing = len(core.standing())
        log.info("state: restored %d points' alarm state (%d alarms standing) and %d edges' "
                 "sequence numbers, saved %.0f s before (%s)", points, standing,
                 len(sequences), (core.clock.now_ms() - saved_ms) / 1000, self.path)
        return True

    def _durable(self) -> asyncio.Future[Any]:
        """Resolved once what came before now is durable: written or spooled, and in the
        stream of every alarm sink that tells when (``MarksDurable``)."""
        loop = asyncio.get_running_loop()
        marks: list[asyncio.Future[None]] = []
        makers: list[Callable[[Callable[[], None]], None]] = [self.core.writer.mark]
        for sink in self.core.alarm_sinks:
            if isinstance(sink, MarksDurable):
                makers.append(sink.mark)
        for mark in makers:
            f: asyncio.Future[None] = loop.create_future()
            mark(functools.partial(_resolve, f))
            marks.append(f)
        return marks[0] if len(marks) == 1 else asyncio.gather(*marks)

    async def capture(self) -> None:
        """Take a snapshot under the step lock, unless nothing is new or ``MAX_PENDING``
        wait already (the next one then covers more)."""
        core, acks = self.core, self.acks
        if len(self._pending) >= MAX_PENDING:
            return
        async with core.step_lock:
            if core.version == self._captured_version and not (acks and acks.waiting):
                return
            durable = self._durable()
            reuse = self._free.pop() if self._free else None
            tokens = acks.take() if acks is not None else []
            if self.positions and tokens:
                self.position = max(max(tokens), self.position or 0)
            self._pending.append(_Capture(core.version, capture(core.engine, reuse),
                                          core.sequences.state(), tokens, durable,
                                          self.position))
            self._captured_version = core.version
        self._wake.set()

    async def write_step(self) -> None:
        """Wait (a moment) for a capture and for the oldest to be durable; write the newest
        durable one atomically in a worker thread; acknowledge what it covers. A failed
        write leaves them waiting for the next attempt."""
        if not self._pending:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._wake.wait()
            if not self._pending:
                return
        try:
            # bounded, so that the loop sees a stop (what never becomes durable, with no
            # spool and the database away at the stop, is never acknowledged)
            async with asyncio.timeout(0.5):
                await asyncio.shield(self._pending[0].durable)
        except TimeoutError:
            return
        k = max(i for i, c in enumerate(self._pending) if c.durable.done())
        newest = self._pending[k]
        await asyncio.to_thread(save, self.path, newest.snap, newest.sequences,
                                self.core.clock.now_ms(), newest.position)
        covered = [self._pending.popleft() for _ in range(k + 1)]
        self._free = [c.snap for c in covered][-MAX_PENDING:]      # their memory, reused
        self.saves += 1
        if self.acks is not None:
            self.acks.buffer.ack([t for c in covered for t in c.tokens])

    async def save(self) -> None:
        """Capture now and write everything captured (the stop's last word; tests)."""
        await self.capture()
        while self._pending:
            await self.write_step()
