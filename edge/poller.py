"""Polling Modbus TCP devices: one client and one task per device, on a drift-free schedule.

pymodbus serialises requests per connection, so each device gets its own connection and one
slow device never delays another's poll. Reconnects are ours (pymodbus's own are switched off)
so that a dead device is retried at a bounded, logged rate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.devices import ModbusDevice
from edge.registers import BIT_TABLES, ReadBlock, plan_reads
from edge.wire import Quality

log = logging.getLogger(__name__)

# (point ids, ts_ms, values, quality) of one poll
Samples = tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.uint8]]
SampleSink = Callable[[Samples], None]


class DevicePoller:
    """Polls one device at its interval and hands every poll's samples to ``sink``."""

    def __init__(self, device_id: str, dev: ModbusDevice, sink: SampleSink) -> None:
        self.device_id = device_id
        self.dev = dev
        self.blocks: list[ReadBlock] = plan_reads(dev.registers, dev.max_registers_per_read)
        self._sink = sink
        self._client = AsyncModbusTcpClient(dev.host, port=dev.port, timeout=dev.timeout_s,
                                            retries=0, reconnect_delay=0)
        self.online: bool | None = None
        self.polls_ok = 0
        self.polls_failed = 0
        self.connect_attempts = 0
        self._backoff_s = 0.0
        self._next_connect = 0.0

    async def _read(self, block: ReadBlock,
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
        read = {"holding": self._client.read_holding_registers,
                "input": self._client.read_input_registers,
                "coil": self._client.read_coils,
                "discrete": self._client.read_discrete_inputs}[block.table]
        rr = await read(block.start, count=block.count, device_id=self.dev.unit_id)
        if rr.isError():
            raise ModbusException(f"exception response {rr}")
        return block.decode_with_quality(rr.bits if block.table in BIT_TABLES
                                         else rr.registers)

    async def poll_once(self) -> None:
        """Read every block once; failed blocks give bad-quality samples, never a stale value."""
        ts = int(time.time() * 1000)
        ok = await self._ensure_connected()
        ids: list[str] = []
        vals: list[npt.NDArray[np.float64]] = []
        quals: list[npt.NDArray[np.uint8]] = []
        error: str | None = None if ok else "not connected"
        for block in self.blocks:
            n = len(block.point_ids)
            ids += block.point_ids
            if error is None:
                try:
                    values, quality = await self._read(block)
                    vals.append(values)
                    quals.append(quality)
                    continue
                except (ModbusException, OSError, TimeoutError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    self._client.close()
            vals.append(np.full(n, np.nan))
            quals.append(np.full(n, Quality.BAD, np.uint8))
        self._set_online(error is None, error)
        if error is None:
            self.polls_ok += 1
        else:
            self.polls_failed += 1
        n_all = len(ids)
        self._sink((ids, np.full(n_all, ts, np.int64), np.concatenate(vals),
                    np.concatenate(quals)))

    async def _ensure_connected(self) -> bool:
        if self._client.connected:
            return True
        now = time.monotonic()
        if now < self._next_connect:
            return False
        self.connect_attempts += 1
        ok = await self._client.connect()
        if ok:
            self._backoff_s = 0.0
            return True
        self._backoff_s = min(max(self._backoff_s * 2, self.dev.poll_interval_s), 60.0)
        self._next_connect = now + self._backoff_s
        return False

    def _set_online(self, online: bool, reason: str | None) -> None:
        if online == self.online:
            return
        if online:
            log.info("device %s online (%s:%d)", self.device_id, self.dev.host, self.dev.port)
        else:
            log.warning("device %s offline: %s", self.device_id, reason)
        self.online = online

    async def run(self) -> None:
        """Poll forever on a fixed schedule; a poll that overruns skips the missed slots."""
        interval = self.dev.poll_interval_s
        next_t = time.monotonic()
        try:
            while True:
                await self.poll_once()
                next_t += interval
                now = time.monotonic()
                if next_t < now:
                    next_t = now + interval - ((now - next_t) % interval)
                await asyncio.sleep(next_t - now)
        finally:
            self._client.close()
