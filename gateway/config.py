"""Loading the site configuration (YAML) and the runtime settings (environment).

A bad file stops start-up with every problem listed by its path, e.g.
``enterprise.hazard_sources.lpg_farm.equipment.V101.points.V101_level.hi: must be below hihi``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerting.escalation import Contacts, EscalationConfig
from alerting.plant import Enterprise, problems_of, rule_problems
from alerting.register import RegisterRules
from edge.clock import parse_clock
from edge.devices import EdgeAgent
from edge.mqtt import MqttSettings
from gateway.notifiers import NotifySettings

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]


class SiteConfig(BaseModel):
    """One enterprise's plant model together with the edge agents that feed it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enterprise: Enterprise
    edges: dict[Identifier, EdgeAgent] = Field(default_factory=dict)
    escalation: EscalationConfig = Field(
        default_factory=EscalationConfig,
        description="who is told about an unacknowledged alarm, and when (none: no escalation)")
    contacts: Contacts = Field(default_factory=Contacts,
                               description="where each role is reached, by channel")
    register_rules: RegisterRules = Field(
        default_factory=RegisterRules,
        description="alarms that become hazard register entries (with escalation configured)")

    @model_validator(mode="after")
    def _registers_name_known_points(self) -> SiteConfig:
        known = self.enterprise.points()
        mapped: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        for edge_id, agent in self.edges.items():
            for path, pid in agent.point_ids():
                where = f"edges.{edge_id}.{path}"
                if pid not in known:
                    problems.append((where, f"point {pid!r} is not defined under enterprise"))
                elif pid in mapped:
                    problems.append((where, f"point {pid!r} is already read at {mapped[pid]}"))
                else:
                    mapped[pid] = where
        known_sources = set(self.enterprise.hazard_sources)
        for section, table in (("escalation.sources", self.escalation.sources),
                               ("contacts.sources", self.contacts.sources)):
            problems += [(f"{section}.{sid}", f"no hazard source {sid!r} in the enterprise")
                         for sid in table if sid not in known_sources]
        if problems:
            raise rule_problems(problems)
        return self

    def source_levels(self) -> dict[str, str]:
        """Hazard source id → its GB 18218 level (一级..四级), where it has one."""
        return {sid: lvl for sid, src in self.enterprise.hazard_sources.items()
                if (lvl := src.grading().level) is not None}


class ConfigError(Exception):
    """The configuration could not be loaded; ``errors`` lists ``path: message`` lines."""

    def __init__(self, source: str, errors: list[str]) -> None:
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(errors))
        self.source = source
        self.errors = errors

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, list[str]]]:
        # picklable with its fields: config is validated in a child process (gateway.compiled)
        return (ConfigError, (self.source, self.errors))


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def format_errors(exc: ValidationError) -> list[str]:
    """One ``path: message`` line per problem, field-level problems expanded."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        path = _dotted(err["loc"])
        problems = problems_of(err.get("ctx"))
        if problems:
            lines += [f"{path}.{field}: {msg}" if path else f"{field}: {msg}"
                      for field, msg in problems]
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {msg}" if path else msg)
    return lines


def parse_site(data: Any, source: str = "<config>") -> SiteConfig:
    """Validate already-parsed YAML data; raises ConfigError listing every problem."""
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc)) from None


def load_site(path: Path | str) -> SiteConfig:
    """Read and validate a site YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(str(p), [f"{where}: not valid YAML: {exc}"]) from None
    return parse_site(data, str(p))


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
    spool_after_s: float = Field(default=5.0, ge=0,
                                 description="how long a batch is retried before it is spooled")


ApiRole = Literal["operator", "safety_manager", "regulator", "admin"]


class ApiUser(BaseModel):
    """Who an API token belongs to."""

    name: str = Field(min_length=1)
    role: ApiRole


class ApiSettings(BaseModel):
    """The REST API (``gateway.api``), served by ``hazgw run`` when a port is set."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535, description="unset: no API")
    tokens: dict[str, ApiUser] = Field(
        default_factory=dict, description='bearer token → user, e.g. HAZGW_API__TOKENS='
                                          '\'{"<token>": {"name": "op.liu", "role": "operator"}}\'')


class Settings(BaseSettings):
    """Runtime settings from the environment (``HAZGW_``, nested with ``__``)."""

    model_config = SettingsConfigDict(env_prefix="HAZGW_", env_nested_delimiter="__",
                                      extra="forbid")

    config: Path = Path("config/demo/plant.yaml")
    edge_id: str = "edge-01"
    database_url: str = Field(
        default="var/hazgw.sqlite3", description="register and audit log: a SQLite file path "
                                                 "or a URL such as postgresql://user@host/db")
    edge_spool_dir: Path = Field(default=Path("var/spool/edge"),
                                 description="where an edge agent keeps messages while the "
                                             "broker is unreachable")
    edge_spool_max_mb: int | None = Field(
        default=None, ge=1, description="spool capacity; unset: 24 h of the edge's configured "
                                        "load (edge.forward.spool_capacity)")
    clock: str = Field(
        default="", description="empty: real time; START_MS@WALL_SxSPEED: the simulated clock "
                                "that `hazgw simulate --speed` prints, shared with it")
    ingest_linger_ms: float = Field(
        default=20, ge=0, le=1000,
        description="under load (several messages waiting), how long the core waits for "
                    "more to evaluate with them: fewer, larger steps cost far less CPU; a "
                    "lone message is evaluated at once; 0 turns it off")
    mqtt: MqttSettings = MqttSettings()
    notify: NotifySettings = NotifySettings()
    api: ApiSettings = ApiSettings()
    # A process configured from the environment spools by default: nothing lost.
    influx: InfluxSettings = InfluxSettings(spool_dir=Path("var/spool/influx"))

    @field_validator("clock")
    @classmethod
    def _clock(cls, v: str) -> str:
        parse_clock(v)            # a bad spec stops start-up with its reason
        return v
