"""The nats-server configuration of one cluster node, as the gateway needs it.

Written by one function so that the shipped example (``config/nats/``) and the tests'
clusters are the same: JetStream on file storage, every peer in ``routes`` on every node
(nats-server sizes its internal streams from the routes it knows: listing only the peers
gave R2 elsewhere and one dead node stalled it), and the subject mapping that puts each
enterprise in one partition (``edge.jetstream.mapping``).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.jetstream import mapping


@dataclass(frozen=True)
class Node:
    """Where one node listens (clients, routes between nodes, HTTP monitoring)."""

    name: str
    host: str
    client_port: int
    route_port: int
    http_port: int


def node_config(node: Node, peers: list[Node], store_dir: str, partitions: int,
                cluster: str = "hazgw", max_file_store: str = "8G") -> str:
    """The config file text of ``node`` in a cluster of ``peers`` (``node`` among them)."""
    src, dst = mapping(partitions)
    routes = ",\n    ".join(f'"nats-route://{p.host}:{p.route_port}"' for p in peers)
    return (f'server_name: "{node.name}"\n'
            f'listen: "{node.host}:{node.client_port}"\n'
            f'http: "{node.host}:{node.http_port}"\n'
            "jetstream {\n"
            f'  store_dir: "{store_dir}"\n'
            "  max_memory_store: 256M\n"
            f"  max_file_store: {max_file_store}\n"
            "}\n"
            "cluster {\n"
            f'  name: "{cluster}"\n'
            f'  listen: "{node.host}:{node.route_port}"\n'
            f"  routes: [\n    {routes}\n  ]\n"
            "}\n"
            "# every enterprise in one partition, whichever node its edges reach\n"
            f'mappings: {{\n  "{src}": "{dst}"\n}}\n')
