"""A private three-node NATS JetStream cluster on free loopback ports (nats-server from its
Debian package), each node in its own store directory, stopped by the PIDs we started.

Before use it proves it is a cluster: every node answers ``/healthz``, and a probe stream
of three replicas has a leader and two current followers; otherwise the fixture fails with
the nodes' logs rather than a test failing later for a reason it cannot see.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.jetstream import NatsSettings
from gateway.natsconf import Node, node_config
from gateway.sim.ports import free_port
from tests.services import Server, _spawn

NATS_SERVER = "/usr/sbin/nats-server"


def _healthy(http_port: int, path: str = "/healthz") -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}", timeout=0.5) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class NatsCluster:
    """The nodes (``Server`` per node: its client port) and their layout."""

    nodes: list[Server]
    layout: list[Node]
    partitions: int

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{n.client_port}" for n in self.layout]

    def settings(self, **kw: object) -> NatsSettings:
        """Client settings for every node of this cluster."""
        return NatsSettings.model_validate({"servers": self.urls,
                                            "partitions": self.partitions, **kw})

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (its store stays)."""
        proc = self.nodes[i].proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def start(self, i: int, timeout_s: float = 30) -> None:
        """Start node ``i`` again on its ports and store; return once it serves clients
        (its streams and consumers catch up in the background: ``/healthz`` says so only
        when every one of them is current, which under load takes a while)."""
        n = self.nodes[i]
        n.proc = _spawn(n.argv, n.log_path)
        self._wait(i, timeout_s, "/varz")

    def _wait(self, i: int, timeout_s: float, path: str = "/healthz") -> None:
        deadline = time.monotonic() + timeout_s
        while not _healthy(self.layout[i].http_port, path):
            if self.nodes[i].proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats node {i} not healthy: "
                                   f"{self.nodes[i].log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.log_path.read_text(errors='replace')[-2000:]}"
                         for n in self.nodes)


async def _probe_replicas(settings: NatsSettings, timeout_s: float) -> str | None:
    """None when a probe stream of three replicas has a leader and two current followers;
    else what was seen last."""
    import nats
    from nats.js.api import StreamConfig
    nc = await nats.connect(servers=settings.servers, connect_timeout=2)
    seen = "no answer"
    try:
        js = nc.jetstream(timeout=5)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            try:
                await js.add_stream(StreamConfig(name="PROBE", subjects=["probe.>"],
                                                 num_replicas=3))
                info = await js.stream_info("PROBE")
                c = info.cluster
                current = [r for r in (c.replicas or []) if r.current] if c else []
                if c is not None and c.leader and len(current) == 2:
                    await js.delete_stream("PROBE")
                    return None
                seen = f"leader {c.leader if c else None}, current followers {len(current)}"
            except Exception as exc:        # no meta leader yet, and the like: try again
                seen = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.25)
        return seen
    finally:
        await nc.close()


@contextlib.contextmanager
def nats_cluster(workdir: Path, partitions: int = 8, size: int = 3) -> Iterator[NatsCluster]:
    """Start ``size`` nodes routed to each other, check the replicas, stop them at the end."""
    if not Path(NATS_SERVER).exists():
        raise RuntimeError(f"{NATS_SERVER} not found: sudo apt-get install -y nats-server "
                           "(make test does this as root)")
    layout = [Node(f"n{i + 1}", "127.0.0.1", free_port(), free_port(), free_port())
              for i in range(size)]
    nodes: list[Server] = []
    cluster = NatsCluster(nodes, layout, partitions)
    try:
        for node in layout:
            d = workdir / node.name
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "nats.conf"
            conf.write_text(node_config(node, layout, str(d / "store"), partitions,
                                        max_file_store="1G"))
            argv = [NATS_SERVER, "-c", str(conf)]
            log_path = d / "nats.log"
            nodes.append(Server(node.name, node.client_port, _spawn(argv, log_path), d, argv,
                                log_path))
        for i in range(size):
            cluster._wait(i, 30)
        # a thread of its own: the fixture may be entered from a running event loop
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            problem = ex.submit(asyncio.run, _probe_replicas(cluster.settings(), 30)).result()
        if problem is not None:
            raise RuntimeError(f"nats cluster without three current replicas ({problem}):\n"
                               f"{cluster.logs()}")
        yield cluster
    finally:
        for n in nodes:
            n.stop()
