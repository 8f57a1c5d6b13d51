"""A rogues' gallery of Modbus devices: a small raw-socket server (not pymodbus, which cannot
be made to misbehave like this) speaking Modbus TCP or RTU over TCP, whose units answer late,
short, with another unit id or function code, with an exception for some addresses, close
the connection mid-frame or never answer — on the requests their ``Behaviour`` picks.

Every register's value is known (``value``), so a test can check each sample with good
quality against what the device holds. Requests on one connection are answered one at a
time, in order, as the bus behind a converter carries one conversation: a late answer
delays the next one, and arrives where the client may take it for the next request's.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from dataclasses import dataclass, field

from gateway.sim.ports import free_port

FC_TABLE = {3: "holding", 4: "input"}


def value(unit: int, table: str, address: int) -> int:
    """What a unit holds at an address: distinct for every unit, table and address."""
    return unit * 1000 + (500 if table == "input" else 0) + address


def crc16(frame: bytes) -> bytes:
    """Modbus RTU CRC (little-endian on the wire)."""
    crc = 0xFFFF
    for b in frame:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


@dataclass
class Behaviour:
    """How a unit misbehaves: on the requests where ``every`` divides its request number
    (1-based; ``every=1``: on all of them), or with ``burst`` on runs of that many requests
    in turn with as many good ones."""

    every: int = 1
    burst: int = 0
    late_s: float = 0.0                 # answer this late
    short: bool = False                 # one register fewer than asked
    wrong_unit: bool = False            # answer as another unit
    wrong_fc: bool = False              # answer as the other register table
    close_mid_frame: bool = False       # send half a reply, then close
    silent: bool = False                # never answer
    exception_at: frozenset[int] = frozenset()   # answer code 2 when the range holds one
    requests: int = 0

    def now(self) -> bool:
        self.requests += 1
        if self.burst:
            return ((self.requests - 1) // self.burst) % 2 == 0
        return self.requests % self.every == 0


@dataclass
class Rogue:
    """The server; ``framing`` is "tcp" (MBAP) or "rtu" (RTU over TCP)."""

    units: dict[int, Behaviour]
    framing: str = "tcp"
    port: int = field(default_factory=free_port)
    connections: int = 0
    answered: Counter[int] = field(default_factory=Counter)
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> Rogue:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._server.wait_closed()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                if self.framing == "tcp":
                    tid, _, length, uid = struct.unpack(">HHHB", await r.readexactly(7))
                    pdu = await r.readexactly(length - 1)
                else:
                    frame = await r.readexactly(8)
                    tid, uid, pdu = 0, frame[0], frame[1:6]
                if not await self._answer(w, tid, uid, pdu):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    async def _answer(self, w: asyncio.StreamWriter, tid: int, uid: int, pdu: bytes) -> bool:
        fc, start, count = struct.unpack(">BHH", pdu[:5])
        b = self.units.get(uid)
        if b is None:
            return True                       # no such slave on the bus: silence
        odd = b.now()
        if odd and b.silent:
            return True
        if odd and b.late_s:
            await asyncio.sleep(b.late_s)
        table = FC_TABLE[fc]
        if b.exception_at & set(range(start, start + count)):
            body = struct.pack(">BB", fc | 0x80, 2)
        else:
            n = count - 1 if odd and b.short else count
            out_fc = (7 - fc) if odd and b.wrong_fc else fc      # 3 <-> 4
            body = struct.pack(">BB", out_fc, 2 * n) + b"".join(
                struct.pack(">H", value(uid, table, start + i)) for i in range(n))
        out_uid = uid + 1 if odd and b.wrong_unit else uid
        if self.framing == "tcp":
            frame = struct.pack(">HHHB", tid, 0, len(body) + 1, out_uid) + body
        else:
            head = bytes([out_uid]) + body
            frame = head + crc16(head)
        if odd and b.close_mid_frame:
            w.write(frame[: len(frame) // 2])
            await w.drain()
            return False
        w.write(frame)
        await w.drain()
        self.answered[uid] += 1
        return True
