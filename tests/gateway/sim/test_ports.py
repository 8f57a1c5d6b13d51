"""gateway.sim.ports: free loopback ports, drawn below the kernel's ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.sim import ports


def test_ports_are_below_the_ephemeral_range_bindable_and_never_repeated() -> None:
    top = ports.ephemeral_start()
    got = [ports.free_port() for _ in range(200)]
    assert len(set(got)) == len(got)
    assert all(10_000 <= p < top for p in got)
    for p in got[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
            s.listen()


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports.free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        spare = ports.free_port()
        candidates = iter([taken, spare])
        monkeypatch.setattr(ports._rng, "randrange", lambda lo, hi: next(candidates))
        ports._given.discard(spare)
        assert ports.free_port() == spare


def test_an_unusual_ephemeral_range_falls_back_to_the_kernels_choice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    odd = tmp_path / "ip_local_port_range"
    odd.write_text("10200\t60999\n")
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", odd)
    assert ports.ephemeral_start() == 10_200
    port = ports.free_port()
    # not drawn from the 200 ports below the odd range's start: the kernel chose it
    assert port not in range(10_000, 10_200)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_an_unreadable_range_means_linuxs_default(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", tmp_path / "missing")
    assert ports.ephemeral_start() == 32768
