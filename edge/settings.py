"""The edge agent's own runtime settings, from the environment (``HAZGW_``, nested with
``__``): an edge box needs no gateway settings. Unknown ``HAZGW_`` variables (the gateway's,
on a machine that runs both) are ignored here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.clock import parse_clock
from edge.jetstream import NatsSettings
from edge.mqtt import MqttSettings
from edge.signing import MIN_KEY_CHARS


def _valid_clock(v: str) -> str:
    parse_clock(v)            # a bad spec stops start-up with its reason
    return v


# empty: real time; START_MS@WALL_SxSPEED: the simulated clock `hazgw simulate --speed` prints
ClockSpec = Annotated[str, AfterValidator(_valid_clock), Field(
    description="empty: real time; START_MS@WALL_SxSPEED: the simulated clock that "
                "`hazgw simulate --speed` prints, shared with it")]


class EdgeSettings(BaseSettings):
    """Where the edge's config is, which edge it is, its spool, its clock and its broker."""

    model_config = SettingsConfigDict(env_prefix="HAZGW_", env_nested_delimiter="__",
                                      extra="ignore")

    config: Path = Field(default=Path("config/demo/plant.yaml"),
                         description="a site file (only enterprise.code and this edge's "
                                     "section are read) or an edge-only file of that shape")
    edge_id: str = "edge-01"
    edge_spool_dir: Path = Field(default=Path("var/spool/edge"),
                                 description="where messages wait while the broker is "
                                             "unreachable (a folder per edge under it)")
    edge_spool_max_mb: int | None = Field(
        default=None, ge=1, description="spool capacity; unset: 24 h of the edge's configured "
                                        "load (edge.forward.spool_capacity)")
    clock: ClockSpec = ""
    transport: Literal["mqtt", "nats"] = Field(
        default="mqtt", description="the uplink: MQTT QoS 1 to the broker (one box) or "
                                    "JetStream publishes with a dedup id (edge.jetstream)")
    mqtt: MqttSettings = MqttSettings()
    nats: NatsSettings = NatsSettings()
    signing_key: SecretStr | None = Field(
        default=None, min_length=MIN_KEY_CHARS,
        description="sign every message with this key (at least 32 characters; the core "
                    "holds it in HAZGW_SIGNING__KEYS): edge.signing")
