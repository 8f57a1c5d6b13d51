"""The edge process: its own section of the config, store and forward to the broker, the
agent's pollers and sensors; ``python -m edge`` (and ``hazgw edge``) run it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge.agent import EdgeAgent
from edge.clock import parse_clock
from edge.config import EdgeConfig
from edge.forward import Sender, StoreAndForward, spool_capacity
from edge.jetstream import JetStreamUplink
from edge.mqtt import MqttUplink, Uplink
from edge.settings import EdgeSettings
from edge.signing import SignedUplink, key_id
from edge.spool import Spool

log = logging.getLogger(__name__)


class EdgeConfigError(Exception):
    """The edge's section could not be read; ``errors`` lists ``path: message`` lines."""

    def __init__(self, source: str, errors: list[str]) -> None:
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(errors))
        self.source = source
        self.errors = errors


def load_edge(path: Path | str, edge_id: str) -> tuple[str, EdgeConfig]:
    """(enterprise code, this edge's config) from a site file or an edge-only file
    (``enterprise: {code: …}`` and ``edges: {<id>: …}``); nothing else of the file is read,
    so an edge runs without the gateway's part of the config."""
    p = Path(path)
    try:
        data: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EdgeConfigError(str(p), [f"cannot read file: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise EdgeConfigError(str(p), [f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise EdgeConfigError(str(p), ["not a mapping"])
    ent, edges = data.get("enterprise"), data.get("edges") or {}
    code = ent.get("code") if isinstance(ent, dict) else None
    errors = [] if isinstance(code, str) and code else ["enterprise.code: required"]
    if not isinstance(edges, dict):
        raise EdgeConfigError(str(p), [*errors, "edges: not a mapping"])
    if edge_id not in edges:
        known = ", ".join(edges) or "none"
        errors.append(f"edges.{edge_id}: no such edge (known: {known})")
    if errors:
        raise EdgeConfigError(str(p), errors)
    try:
        return str(code), EdgeConfig.model_validate(edges[edge_id])
    except ValidationError as exc:
        raise EdgeConfigError(str(p), [
            f"edges.{edge_id}." + ".".join(str(x) for x in e["loc"]) + f": {e['msg']}"
            for e in exc.errors(include_url=False)]) from None


async def run_edge(enterprise: str, edge_id: str, cfg: EdgeConfig, settings: EdgeSettings,
                   stop: asyncio.Event | None = None) -> None:
    """Poll the edge's devices and publish to the broker until ``stop`` is set."""
    stop = stop or asyncio.Event()
    mqtt_settings = settings.mqtt.model_copy(update={"client_id": f"hazgw-edge-{edge_id}"})
    capacity = (settings.edge_spool_max_mb * 1024 * 1024 if settings.edge_spool_max_mb
                else spool_capacity(cfg))
    spool = Spool(settings.edge_spool_dir / edge_id, capacity)
    log.info("edge %s: spool %s holds up to %.0f MB", edge_id, spool.dir, capacity / 2**20)
    sensor_settings = settings.mqtt.model_copy(
        update={"client_id": f"hazgw-edge-{edge_id}-sensors"})
    sender: Sender = MqttUplink(mqtt_settings) if settings.transport == "mqtt" \
        else JetStreamUplink(settings.nats, f"edge-{edge_id}")
    if settings.transport == "nats":
        log.info("edge %s: publishing to JetStream %s (stream %s)", edge_id,
                 settings.nats.where(), settings.nats.stream)
    async with StoreAndForward(sender, spool) as uplink:
        key = settings.signing_key
        signed: Uplink = uplink if key is None else \
            SignedUplink(uplink, key.get_secret_value().encode())
        if key is not None:
            log.info("edge %s: signing every message (key %s)", edge_id,
                     key_id(key.get_secret_value().encode()))
        agent = EdgeAgent(enterprise, edge_id, cfg, signed, sensor_settings, uplink.stats,
                          parse_clock(settings.clock))
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(agent.run(), name=f"edge-{edge_id}")
            await stop.wait()
            task.cancel()
