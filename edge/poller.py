"""Polling Modbus devices: one task per device on a drift-free schedule, over lines.

A line is one pymodbus client: a Modbus TCP device has its own, so one slow device never
delays another's poll; the slaves behind one RTU-over-TCP converter or on one serial port
share theirs, one request at a time, because the bus carries one conversation. Reconnects are
ours (pymodbus's own are switched off) so that a dead device is retried at a bounded, logged
rate: once ``offline_after_failures`` polls in a row failed a device is offline and waits
2, 4, 8 … poll intervals (capped, with jitter so that devices that failed together do not
retry together).

A value is only taken from the reply to its own request. Modbus TCP replies carry the
request's transaction id and unit id (pymodbus checks both); we check the function code and
the size. RTU has no transaction id: on a serial or RTU-over-TCP line a request is never
repeated, and after a timeout or any bad frame the line is closed and opened again before
the next request, so that a late reply cannot be read as the next request's answer. An
exception response (illegal address, say) is the device answering: only that block's points
are bad, the connection stays, the other blocks are read, and nothing backs off.

pymodbus's own log lines (an ERROR with a dump of recent frames for every failed request)
are kept out of the log and counted (``LIBRARY_LOG``); they show at debug level.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from edge.clock import WALL, Clock
from edge.config import ModbusDevice
from edge.registers import BIT_TABLES, ReadBlock, plan_reads
from edge.wire import Quality

log = logging.getLogger(__name__)

# (point ids, ts_ms, values, quality, quality detail) of one poll; the detail is the Modbus
# exception code of a block the device refused, 0 otherwise (wire field "qd")
Samples = tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.float64],
                npt.NDArray[np.uint8], npt.NDArray[np.uint8]]
SampleSink = Callable[[Samples], None]
JITTER = 0.2          # a backoff wait is stretched by up to this fraction, at random
_READ = {"holding": "read_holding_registers", "input": "read_input_registers",
         "coil": "read_coils", "discrete": "read_discrete_inputs"}
_FC = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}


class MalformedReplyError(ValueError):
    """A reply that cannot be the answer to the request (its size or function code)."""


class DeviceExceptionError(ValueError):
    """The device answered a block's request with a Modbus exception response."""

    def __init__(self, code: int, block: ReadBlock) -> None:
        super().__init__(f"exception code {code} for {block.table} {block.start}"
                         f"..{block.start + block.count - 1}")
        self.code = code


class _LibraryLog(logging.Filter):
    """Counts pymodbus's records; lets them through only when the edge logs at debug."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.count += 1
        return logging.getLogger("edge").isEnabledFor(logging.DEBUG)


LIBRARY_LOG = _LibraryLog()
logging.getLogger("pymodbus.logging").addFilter(LIBRARY_LOG)


class Line:
    """One connection to an endpoint, shared by the devices reached through it."""

    def __init__(self, devices: list[ModbusDevice]) -> None:
        dev = devices[0]
        self.endpoint = dev.endpoint()
        self.shared = dev.transport != "tcp"
        # A shared line waits as long as its slowest device needs.
        timeout = max(d.timeout_s for d in devices)
        # no blind repeat where replies carry no transaction id (see the module's doc)
        retries = max(d.retries for d in devices) if dev.transport == "tcp" else 0
        self.pause_after_connect_s = max(d.workarounds.pause_after_connect_s for d in devices)
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if dev.transport == "rtu":
            assert dev.serial is not None
            s = dev.serial
            self.client = AsyncModbusSerialClient(
                s.port, framer=FramerType.RTU, baudrate=s.baudrate, bytesize=s.bytesize,
                parity=s.parity, stopbits=s.stopbits, timeout=timeout, retries=retries,
                reconnect_delay=0)
        else:
            assert dev.host is not None
            framer = FramerType.RTU if dev.transport == "rtu_over_tcp" else FramerType.SOCKET
            self.client = AsyncModbusTcpClient(dev.host, port=dev.port, framer=framer,
                                               timeout=timeout, retries=retries,
                                               reconnect_delay=0)
        self.lock = asyncio.Lock()
        self.connect_attempts = 0

    async def ensure_connected(self) -> bool:
        """Connect if not connected (one attempt); whether the line is usable."""
        if self.client.connected:
            return True
        self.connect_attempts += 1
        if not await self.client.connect():
            return False
        if self.pause_after_connect_s:
            await asyncio.sleep(self.pause_after_connect_s)
        return True

    def close(self) -> None:
        """Drop the connection; the next poll reconnects."""
        self.client.close()


def lines_for(devices: dict[str, ModbusDevice]) -> dict[str, Line]:
    """A line per device id: its own for Modbus TCP, shared by endpoint otherwise."""
    shared: dict[str, list[str]] = {}
    out: dict[str, Line] = {}
    for did, dev in devices.items():
        if dev.transport == "tcp":
            out[did] = Line([dev])
        else:
            shared.setdefault(dev.endpoint(), []).append(did)
    for ids in shared.values():
        line = Line([devices[d] for d in ids])
        out.update(dict.fromkeys(ids, line))
    return out


@dataclass
class PollStats:
    """Counters of one device, published as edge self-metrics."""

    polls_ok: int = 0
    polls_failed: int = 0
    polls_skipped: int = 0        # in backoff: samples sent bad without asking the device
    exception_responses: int = 0  # blocks the device answered with an exception
    last_exception_code: int = 0
    latency_sum_s: float = 0.0    # of successful polls
    latency_max_s: float = 0.0    # since the last snapshot


class DevicePoller:
    """Polls one device at its interval and hands every poll's samples to ``sink``."""

    def __init__(self, device_id: str, dev: ModbusDevice, sink: SampleSink,
                 line: Line | None = None, clock: Clock = WALL) -> None:
        self.device_id = device_id
        self.clock = clock
        self.dev = dev
        w = dev.workarounds
        if w.one_request_per_field:
            self.blocks = [b for pid, reg in dev.registers.items()
                           for b in plan_reads({pid: reg}, w.max_registers_per_request)]
        else:
            self.blocks = plan_reads(dev.registers, w.max_registers_per_request, w.max_gap)
        self._sink = sink
        self._ids = [pid for b in self.blocks for pid in b.point_ids]
        self.line = line or Line([dev])
        self.online: bool | None = None
        self.offline_events = 0
        self.stats = PollStats()
        self.failures = 0
        self._next_try_ms = 0
        self._refused: dict[int, int] = {}     # block → exception code, as last said
        self.rnd = random.Random()    # backoff jitter; the test kit seeds it

    @property
    def connect_attempts(self) -> int:
        """Connection attempts of this device's line."""
        return self.line.connect_attempts

    async def _read(self, block: ReadBlock,
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
        if not self.line.client.connected and not await self.line.ensure_connected():
            raise ConnectionException(f"cannot reconnect to {self.line.endpoint}")
        read = getattr(self.line.client, _READ[block.table])
        rr = await read(block.start, count=block.count, device_id=self.dev.unit_id)
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            if isinstance(code, int) and rr.function_code == _FC[block.table] | 0x80:
                raise DeviceExceptionError(code, block)
            raise ModbusException(f"error reply {rr}")
        if getattr(rr, "retries", 0):
            # answered late, to the first request or its repeat (same transaction id, so the
            # value is right); the other answer is still on its way: a fresh connection for
            # the next request, rather than it timing out behind that answer
            self.line.close()
        if rr.function_code != _FC[block.table]:
            raise MalformedReplyError(f"reply with function code {rr.function_code} to a "
                                      f"{block.table} read (code {_FC[block.table]})")
        bits = block.table in BIT_TABLES
        words = rr.bits if bits else rr.registers
        # bits come padded to whole bytes; registers exactly as asked. A reply of another
        # size is not this block's answer (maybe another's, late): never a value
        if len(words) < block.count or len(words) >= block.count + (8 if bits else 1):
            raise MalformedReplyError(f"reply with {len(words)} "
                                      f"{'bits' if bits else 'registers'} where "
                                      f"{block.count} were asked for at {block.table} "
                                      f"{block.start}")
        return block.decode_with_quality(words[:block.count] if bits else words)

    async def poll_once(self) -> None:
        """Read every block once; failed blocks give bad-quality samples, never a stale value."""
        ts = self.clock.now_ms()
        started = time.monotonic()
        if ts < self._next_try_ms:
            self.stats.polls_skipped += 1
            self._emit(ts, [], [])
            return
        if self.line.shared:            # one conversation at a time on a shared bus
            async with self.line.lock:
                error = await self._read_all(ts)
        else:                           # a device's own line: its polls never overlap
            error = await self._read_all(ts)
            if self.dev.workarounds.close_after_poll:
                self.line.close()
        if error is None or self.failures + 1 >= self.dev.offline_after_failures:
            self._set_online(error is None, error)
        if error is None:
            elapsed = time.monotonic() - started
            self.stats.polls_ok += 1
            self.stats.latency_sum_s += elapsed
            self.stats.latency_max_s = max(self.stats.latency_max_s, elapsed)
            self.failures = 0
            return
        self.stats.polls_failed += 1
        self.failures += 1
        if self.failures >= self.dev.offline_after_failures:
            step = min(self.dev.poll_interval_s
                       * 2 ** (self.failures - self.dev.offline_after_failures + 1),
                       self.dev.reconnect_max_s)
            # on the clock's time, so that a simulated plant backs off in simulated seconds
            self._next_try_ms = ts + int(1000 * step * (1 + JITTER * self.rnd.random()))

    async def _read_all(self, ts: int) -> str | None:
        try:
            if not await self.line.ensure_connected():
                self._emit(ts, [], [])
                return f"cannot connect to {self.line.endpoint}"
        except (ModbusException, OSError) as exc:
            self._emit(ts, [], [])
            return f"cannot connect to {self.line.endpoint}: {exc}"
        vals: list[npt.NDArray[np.float64]] = []
        quals: list[npt.NDArray[np.uint8]] = []
        details: list[npt.NDArray[np.uint8]] = []
        refused: dict[int, int] = {}
        for i, block in enumerate(self.blocks):
            try:
                values, quality = await self._read(block)
            except DeviceExceptionError as exc:
                # the device answered: this block is bad, the rest is read as usual
                values = np.full(len(block.point_ids), np.nan)
                quality = np.full(len(block.point_ids), Quality.BAD, np.uint8)
                details.append(np.full(len(block.point_ids), exc.code & 0xFF, np.uint8))
                refused[i] = exc.code
                self.stats.exception_responses += 1
                self.stats.last_exception_code = exc.code
            except (ModbusException, OSError, TimeoutError, MalformedReplyError) as exc:
                # The stream may hold a late answer (RTU has no transaction id): start
                # afresh, on a shared line too, before anyone's next request.
                self.line.close()
                self._emit(ts, vals, quals, details)
                # the blocks after this one were not asked: nothing to say of them
                self._say_refused({**self._refused, **refused})
                return f"{type(exc).__name__}: {exc}"
            else:
                details.append(np.zeros(len(block.point_ids), np.uint8))
            vals.append(values)
            quals.append(quality)
        self._emit(ts, vals, quals, details)
        self._say_refused(refused)
        return None

    def _say_refused(self, refused: dict[int, int]) -> None:
        """Say once when a block starts or stops being refused with an exception."""
        if refused == self._refused:
            return
        for i in sorted(set(refused) | set(self._refused)):
            b = self.blocks[i]
            what = f"{b.table} {b.start}..{b.start + b.count - 1} ({', '.join(b.point_ids)})"
            if i in refused and self._refused.get(i) != refused[i]:
                log.warning("device %s answers %s with exception code %d: those points are "
                            "bad, the others are read", self.device_id, what, refused[i])
            elif i not in refused:
                log.info("device %s answers %s again", self.device_id, what)
        self._refused = refused

    def _emit(self, ts: int, vals: list[npt.NDArray[np.float64]],
              quals: list[npt.NDArray[np.uint8]],
              details: list[npt.NDArray[np.uint8]] | None = None) -> None:
        """Samples of every point: what was read, then, for the blocks not read because the
        device or its line did not answer, Quality.STALE (the core raises one "device off
        line" alarm for them instead of a fault alarm per point). A block the device refused
        with an exception is in ``quals`` as BAD (the device answered) with its exception
        code in ``details``."""
        ids = self._ids
        n = len(ids)
        if len(vals) == len(self.blocks) == 1:          # the common case: one read, all of it
            values, quality = vals[0], quals[0]
            detail = details[0] if details else np.zeros(n, np.uint8)
        else:
            rest = n - sum(len(v) for v in vals)
            values = np.concatenate([*vals, np.full(rest, np.nan)])
            quality = np.concatenate([*quals, np.full(rest, Quality.STALE, np.uint8)])
            detail = np.concatenate([*(details or [])[:len(vals)],
                                     np.zeros(rest, np.uint8)])
        self._sink((ids, np.full(n, ts, np.int64), values, quality, detail))

    def _set_online(self, online: bool, reason: str | None) -> None:
        if online == self.online:
            return
        if online:
            log.info("device %s online (%s)", self.device_id, self.line.endpoint)
        else:
            self.offline_events += 1
            log.warning("device %s offline: %s; retrying with backoff up to %gs",
                        self.device_id, reason, self.dev.reconnect_max_s)
        self.online = online

    async def _poll_guarded(self) -> None:
        """One poll; anything it did not foresee is a failed poll (bad samples, counted,
        said once per streak), never the end of the device's polling."""
        try:
            await self.poll_once()
        except Exception as exc:          # the task must outlive any one poll
            self.stats.polls_failed += 1
            self.failures += 1
            self._emit(self.clock.now_ms(), [], [])
            self.line.close()
            self._set_online(False, f"unexpected {type(exc).__name__}: {exc}")

    async def run(self) -> None:
        """Poll forever on a fixed schedule; a poll that overruns skips the missed slots."""
        interval = self.dev.poll_interval_s / self.clock.speed
        next_t = time.monotonic()
        me = asyncio.current_task()
        try:
            while True:
                await self._poll_guarded()
                if me is not None and me.cancelling():
                    # Python 3.11's wait_for (inside pymodbus) can swallow a cancellation
                    # that coincides with a reply; the request count still shows it.
                    raise asyncio.CancelledError
                next_t += interval
                now = time.monotonic()
                if next_t < now:
                    next_t = now + interval - ((now - next_t) % interval)
                # under a millisecond to wait: yield without a timer (the loop's timer heap
                # costs more than the wait is worth when a device is polled flat out)
                await asyncio.sleep(next_t - now if next_t - now >= 0.001 else 0)
        finally:
            self.line.close()
