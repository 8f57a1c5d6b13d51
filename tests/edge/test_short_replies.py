"""A Modbus TCP device that answers with fewer registers than asked for (a small raw-socket
server, misbehaving on purpose: no library server can be made to). The poller marks that
poll's samples bad, says the device offline once, keeps polling, and reads good values
again when the device answers properly.

Seen before: the short reply raised ValueError in ``edge/registers.py`` that the poll did not
catch; the device's poll task ended without a word and never polled again."""

from __future__ import annotations

import asyncio
import logging
import struct

import numpy as np
import pytest

from edge.config import ModbusDevice
from edge.poller import DevicePoller
from edge.wire import Quality
from gateway.sim.ports import free_port
from tests.waiting import wait_until


class ShortReplies:
    """Holding registers 0..9 = 100..109; replies requests ``short_from``..``short_to``
    with ``off`` registers too many or too few, then answers properly again."""

    def __init__(self, short_from: int, short_to: int, off: int = -1) -> None:
        self.port = free_port()
        self.requests = 0
        self.short_from, self.short_to, self.off = short_from, short_to, off
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await r.readexactly(7)
                tid, _, length, uid = struct.unpack(">HHHB", head)
                pdu = await r.readexactly(length - 1)
                fc, start, count = struct.unpack(">BHH", pdu[:5])
                self.requests += 1
                n = count + self.off if self.short_from <= self.requests <= self.short_to \
                    else count
                body = struct.pack(">BB", fc, 2 * n) + b"".join(
                    struct.pack(">H", 100 + start + i) for i in range(n))
                w.write(struct.pack(">HHHB", tid, 0, len(body) + 1, uid) + body)
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()


@pytest.mark.parametrize(("off", "reason"), [(-1, "1 registers where 2"),
                                           (+1, "3 registers where 2")])
async def test_a_reply_of_the_wrong_size_is_a_bad_poll_and_polling_goes_on(
        caplog: pytest.LogCaptureFixture, off: int, reason: str) -> None:
    """Too short (it once ended the poll task) or too long (it was decoded as good)."""
    device = ShortReplies(short_from=3, short_to=6, off=off)
    await device.start()
    dev = ModbusDevice.model_validate({
        "host": "127.0.0.1", "port": device.port, "poll_interval_s": 0.1, "timeout_s": 1,
        "reconnect_max_s": 0.2,
        "registers": {"a": {"address": 0, "type": "uint16"},
                      "b": {"address": 1, "type": "uint16"}}})
    got: list[tuple[list[str], list[float], list[int]]] = []
    poller = DevicePoller("short", dev, lambda s: got.append(
        (list(s[0]), s[2].tolist(), s[3].tolist())))
    task = asyncio.create_task(poller.run())
    try:
        with caplog.at_level(logging.INFO, logger="edge.poller"):
            await wait_until(lambda: device.requests >= 10 and poller.online, 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await device.stop()
    qualities = [q for _, _, q in got]
    # a reply that cannot be trusted is no answer: stale, not a value
    bad = [i for i, q in enumerate(qualities) if set(q) == {Quality.STALE}]
    good = [i for i, q in enumerate(qualities) if set(q) == {Quality.GOOD}]
    assert bad and good and max(good) > max(bad)         # it recovered after the bad ones
    assert all(v == [100.0, 101.0] for _, v, q in got if set(q) == {Quality.GOOD})
    assert all(np.isnan(v).all() for _, v, q in got if set(q) == {Quality.STALE})
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("device short")]
    assert sum("offline" in m for m in said) == 1
    assert reason in said[-2]
