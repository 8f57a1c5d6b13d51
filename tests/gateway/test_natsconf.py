"""The shipped nats-server configs are what ``gateway.natsconf`` writes (the tests' clusters
run on the same function), and their mapping is the one the gateway computes with."""

from __future__ import annotations

from pathlib import Path

from edge.jetstream import mapping
from gateway.natsconf import Node, node_config

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_shipped_node_configs_are_generated_and_carry_the_mapping() -> None:
    nodes = [Node(f"nats-{i}", f"nats-{i}", 4222, 6222, 8222) for i in (1, 2, 3)]
    for n in nodes:
        text = (ROOT / "config" / "nats" / f"{n.name}.conf").read_text()
        body = text.split("\n", 2)[2]           # after the two comment lines
        assert body == node_config(n, nodes, "/data/jetstream", 8)
        src, dst = mapping(8)
        assert f'"{src}": "{dst}"' in text
        assert all(f"nats-route://{p.host}:6222" in text for p in nodes)
