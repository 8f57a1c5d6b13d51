"""Free TCP ports on loopback, for simulated devices and for the private brokers and databases
that tests and benchmarks start.

A port from the kernel's ephemeral range (what binding to port 0 gives) can be handed, between
the check and the server's own bind, to any outgoing connection on the machine as its local
port; the server then fails with "address already in use". CI met exactly that: a simulated
PLC lost its port to a connection made in the meantime. Ports are therefore drawn below that
range, where the kernel never picks one by itself, and one process never hands out a port
twice.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_rng = random.SystemRandom()      # a test that seeds ``random`` must not repeat our ports
_given: set[int] = set()


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (Linux's default where unreadable)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now, below the ephemeral range."""
    top = ephemeral_start()
    if top - _LOWEST < 1000:        # an unusual range: take the kernel's choice
        with socket.socket() as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
            return port
    for _ in range(500):
        port = _rng.randrange(_LOWEST, top)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free TCP port on {host} in {_LOWEST}..{top - 1} after 500 tries")
