"""Runtime settings of the gateway, from the environment (``HAZGW_``, nested with ``__``).

Secrets (passwords, tokens, the webhook secret) come only from here, never from the site file.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerting.audit import key_id as audit_key_id
from edge.jetstream import NatsSettings
from edge.mqtt import MqttSettings
from edge.settings import ClockSpec
from edge.signing import MIN_KEY_CHARS, Verifier


class NotifySettings(BaseModel):
    """Channel settings (secrets from the environment: ``HAZGW_NOTIFY__...``)."""

    webhook_secret: SecretStr = SecretStr("")
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "hazgw@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    file_dir: Path = Field(default=Path("var/notifications"),
                           description="where ``file`` contacts' JSON lines are appended")


class InfluxSettings(BaseModel):
    """Where readings and alarm events are written."""

    kind: Literal["v1", "v2", "file", "none"] = "v1"
    url: str = "http://127.0.0.1:8086"
    database: str = "hazgw"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    org: str = "hazgw"
    bucket: str = "hazgw"
    token: SecretStr | None = None
    path: Path = Path("var/readings.lp")
    gzip: bool = False
    batch_points: int = Field(default=5000, ge=1, le=100_000)
    flush_interval_s: float = Field(default=0.2, gt=0)
    writers: int = Field(default=2, ge=1, le=8)
    max_pending_batches: int = Field(default=64, ge=1)
    timeout_s: float = Field(default=10.0, gt=0)
    spool_dir: Path | None = Field(
        default=None, description="where batches wait while the target is down (none: "
                                  "retry in memory with backpressure)")
    spool_max_mb: int = Field(default=1024, ge=1)
    spool_after_s: float = Field(
        default=2.0, ge=0.1, le=60,
        description="how long a batch may take (retries, or one hung write) before it is "
                    "spooled: the MQTT messages it holds are acknowledged only once it is "
                    "written or spooled")


ApiRole = Literal["operator", "safety_manager", "regulator", "admin"]


class ApiUser(BaseModel):
    """Who an API token belongs to."""

    name: str = Field(min_length=1)
    role: ApiRole


TOKEN_DIGEST_PREFIX = "sha256:"
MIN_TOKEN_CHARS = 22                  # 22 URL-safe base64 characters are 132 bits
_HEX64 = re.compile(r"[0-9a-f]{64}")


def token_key_problem(key: str) -> str | None:
    """Why a configured token key is not accepted, or None (never shows the token)."""
    if key.startswith(TOKEN_DIGEST_PREFIX):
        return None if _HEX64.fullmatch(key[len(TOKEN_DIGEST_PREFIX):]) else \
            "a digest key is sha256: and 64 lower-case hex digits"
    if len(key) < MIN_TOKEN_CHARS:
        return (f"a plaintext token needs at least {MIN_TOKEN_CHARS} characters (128 bits); "
                "`hazgw token new ROLE NAME` makes one and prints its digest line")
    return None


class ApiSettings(BaseModel):
    """The REST API (``gateway.api.app``), served by ``hazgw run`` when a port is set."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535, description="unset: no API")
    tokens: dict[str, ApiUser] = Field(
        default_factory=dict, description='token → user, e.g. HAZGW_API__TOKENS=\'{"sha256:'
                                          '<digest>": {"name": "op.liu", "role": "operator"}}\' '
                                          "(hazgw token new prints the line); a plaintext "
                                          "token of 22 or more characters is accepted")
    docs: bool = Field(default=False, description="serve Swagger UI at /docs (it loads its "
                                                  "scripts from a CDN; /openapi.json is always "
                                                  "served)")
    max_live_streams: int = Field(default=20, ge=1, description="open console streams at "
                                                                "most (more: 503)")

    @field_validator("tokens")
    @classmethod
    def _token_keys(cls, v: dict[str, ApiUser]) -> dict[str, ApiUser]:
        problems = [f"the token of {u.name}: {p}" for k, u in v.items()
                    if (p := token_key_problem(k)) is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return v


class SigningSettings(BaseModel):
    """Signed wire messages (``edge.signing``, ``HAZGW_SIGNING__*``)."""

    keys: dict[str, list[SecretStr]] = Field(
        default_factory=dict,
        description='edge id → its signing keys, two while one is rotated, e.g. '
                    'HAZGW_SIGNING__KEYS=\'{"edge-01": ["<the edge\'s HAZGW_SIGNING_KEY>"]}\'')
    required: bool = Field(default=False, description="every edge must sign (an edge with "
                                                      "keys must anyway)")

    @field_validator("keys")
    @classmethod
    def _keys(cls, v: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        problems = [f"{edge}: {n} keys (at most 2: the old and the new while rotating)"
                    for edge, ks in v.items() if (n := len(ks)) > 2]
        problems += [f"{edge}: a key of {len(k.get_secret_value())} characters (at least "
                     f"{MIN_KEY_CHARS})" for edge, ks in v.items() for k in ks
                     if len(k.get_secret_value()) < MIN_KEY_CHARS]
        if problems:
            raise ValueError("; ".join(problems))
        return v

    def verifier(self) -> Verifier:
        """What the core checks each message with."""
        return Verifier({edge: [k.get_secret_value().encode() for k in ks]
                         for edge, ks in self.keys.items()}, self.required)


class AuditSettings(BaseModel):
    """The audit log's key and anchors (``gateway.store.audit``, ``HAZGW_AUDIT__*``)."""

    key: SecretStr | None = Field(
        default=None, min_length=MIN_KEY_CHARS,
        description="keys the audit chain (HMAC-SHA256): kept outside the database, no "
                    "database user can rewrite the chain; unset: plain SHA-256 links")
    previous_keys: list[SecretStr] = Field(
        default_factory=list, description="keys of older records (after a rotation): "
                                          "``hazgw audit verify`` checks them too")
    seal_every_s: float = Field(default=60.0, gt=0, description="how often the alarm "
                                "history and register transitions are sealed and the head "
                                "anchored in InfluxDB")

    def key_bytes(self) -> bytes | None:
        """The key records are keyed with now."""
        return self.key.get_secret_value().encode() if self.key is not None else None

    def all_keys(self) -> dict[str, bytes]:
        """Key id → key, for verifying."""
        keys = [k.get_secret_value().encode()
                for k in ([self.key] if self.key else []) + self.previous_keys]
        return {audit_key_id(k): k for k in keys}


class IngestLimits(BaseModel):
    """What the ingest accepts (``HAZGW_LIMITS__*``; ``gateway.stream.boundary``)."""

    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024,
                                   description="larger messages are refused whole")
    max_ids_per_message: int = Field(default=100_000, ge=1)
    ts_past_s: float = Field(default=7 * 86400, gt=0,
                             description="readings older than this (by the gateway's clock) "
                                         "are dropped and counted")
    ts_future_s: float = Field(default=300, gt=0,
                               description="readings further ahead than this are dropped")
    max_seq_jump: int = Field(default=1_000_000, ge=1,
                              description="a sequence number this far past its edge's "
                                          "highest is refused (a spoofed or corrupt header)")


class StateSettings(BaseModel):
    """Where the core keeps its alarm state across restarts (``gateway.stream.state``)."""

    dir: Path | None = Field(default=None, description="unset: nothing kept (hazgw run "
                                                       "uses var/state)")
    # Messages are acknowledged to the broker once a saved state covers them: this bounds
    # how long they wait (the broker's in-flight limit, 1000 messages in the shipped config,
    # must hold ~this long of ingest). A save at 100 000 points is ~50 MB and ~0.1 s.
    every_s: float = Field(default=1.0, gt=0, le=60,
                           description="how often it is saved when something changed "
                                       "(and at a clean stop)")


class ClusterSettings(BaseModel):
    """One instance of a partitioned deployment (``hazgw cluster DIR``, gateway.cluster)."""

    instance: str = Field(default_factory=lambda: socket.gethostname()[:64],
                          pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
                          description="this instance's name, unique among the live ones "
                                      "(default: the host name)")
    lease_every_s: float = Field(default=1.0, gt=0, le=30,
                                 description="how often partitions are taken or given up")
    stats_every_s: float = Field(default=30.0, gt=0,
                                 description="how often each enterprise's gateway_stats "
                                             "line is written")


class Settings(BaseSettings):
    """Runtime settings from the environment (``HAZGW_``, nested with ``__``)."""

    model_config = SettingsConfigDict(env_prefix="HAZGW_", env_nested_delimiter="__",
                                      extra="forbid")

    config: Path = Path("config/demo/plant.yaml")
    database_url: str = Field(
        default="var/hazgw.sqlite3", description="register and audit log: a SQLite file path "
                                                 "or a URL such as postgresql://user@host/db")
    clock: ClockSpec = ""
    ingest_linger_ms: float = Field(
        default=20, ge=0, le=1000,
        description="under load (several messages waiting), how long the core waits for "
                    "more to evaluate with them: fewer, larger steps cost far less CPU; a "
                    "lone message is evaluated at once; 0 turns it off")
    transport: Literal["mqtt", "nats"] = Field(
        default="mqtt", description="where wire messages come from: the MQTT broker (one "
                                    "box) or the NATS JetStream cluster (gateway.stream."
                                    "jsingest; alarms still go out over MQTT)")
    mqtt: MqttSettings = MqttSettings()
    nats: NatsSettings = NatsSettings()
    limits: IngestLimits = IngestLimits()
    signing: SigningSettings = SigningSettings()
    audit: AuditSettings = AuditSettings()
    state: StateSettings = StateSettings()
    cluster: ClusterSettings = ClusterSettings()
    notify: NotifySettings = NotifySettings()
    api: ApiSettings = ApiSettings()
    # A process configured from the environment spools by default: nothing lost.
    influx: InfluxSettings = InfluxSettings(spool_dir=Path("var/spool/influx"))
