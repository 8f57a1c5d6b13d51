"""A counting TCP relay for tests: it stands between a poller and a device and records every
connection the poller opens, which a killed device (no listener, connections refused) could
not count itself. While the device is down the relay accepts and closes at once, as a
serial-to-Ethernet converter with a dead slave behind it does."""

from __future__ import annotations

import asyncio
import contextlib
import time


class CountingRelay:
    """Listens on 127.0.0.1:``port`` and relays to 127.0.0.1:``upstream``."""

    def __init__(self, port: int, upstream: int) -> None:
        self.port = port
        self.upstream = upstream
        self.connections: list[float] = []     # monotonic time of each accepted connection
        self.first_request: list[float] = []   # ... and of the first bytes sent on it
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections.append(time.monotonic())
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            w.close()
            return
        pipes = [asyncio.create_task(self._pipe(r, uw, self.first_request)),
                 asyncio.create_task(self._pipe(ur, w))]
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for p in pipes:
            p.cancel()
            self._tasks.discard(p)
        for writer in (w, uw):
            writer.close()

    @staticmethod
    async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter,
                    first: list[float] | None = None) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await r.read(65536):
                if first is not None:
                    first.append(time.monotonic())
                    first = None
                w.write(data)
                await w.drain()
