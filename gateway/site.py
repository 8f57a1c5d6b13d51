"""The site configuration (YAML): its model, loading with every error listed by path, its JSON
Schema and the summary ``hazgw check-config`` prints.

A bad file stops start-up with every problem listed by its path, e.g.
``enterprise.hazard_sources.lpg_farm.equipment.V101.points.V101_level.hi: must be below hihi``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from alerting.escalation import Contacts, EscalationConfig
from alerting.plant import Enterprise, problems_of, rule_problems
from alerting.register import RegisterRules
from alerting.shelving import ShelvingPolicy
from alerting.table import ring_capacity, samples_needed, window_notes
from edge.config import EdgeConfig

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]


class SiteConfig(BaseModel):
    """One enterprise's plant model together with the edge agents that feed it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enterprise: Enterprise
    edges: dict[Identifier, EdgeConfig] = Field(default_factory=dict)
    escalation: EscalationConfig = Field(
        default_factory=EscalationConfig,
        description="who is told about an unacknowledged alarm, and when (none: no escalation)")
    contacts: Contacts = Field(default_factory=Contacts,
                               description="where each role is reached, by channel")
    shelving: ShelvingPolicy = Field(
        default_factory=ShelvingPolicy,
        description="who may shelve which alarm, for how long, how often")
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
        # picklable with its fields: config is validated in a child process
        # (gateway.stream.compiled)
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


# A site file larger than this is refused before it is read (a 100 000-point site is ~50 MB).
MAX_SITE_BYTES = 256 * 1024 * 1024
# libyaml's C loader where PyYAML has it (3-4 times the pure-Python loader's speed)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_site(path: Path | str) -> SiteConfig:
    """Read and validate a site YAML file (JSON, a subset of YAML, is read by orjson: a
    generated 100 000-point site loads in seconds that way)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_SITE_BYTES:
            raise ConfigError(str(p), [f"the file is {size:,} bytes; a site file may be at "
                                       f"most {MAX_SITE_BYTES:,} bytes"])
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), [f"not UTF-8 text (byte {exc.start})"]) from None
    if text.lstrip().startswith("{"):
        try:
            return parse_site(orjson.loads(text), str(p))
        except orjson.JSONDecodeError:
            pass                       # YAML's flow style looks like JSON: read it as YAML
    try:
        data = yaml.load(text, Loader=_LOADER)     # a safe loader (C or Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(str(p), [f"{where}: not valid YAML: {exc}"]) from None
    return parse_site(data, str(p))


SCHEMA_DIR = Path(__file__).resolve().parent.parent / "config" / "schema"


def schemas() -> dict[str, str]:
    """File name → schema text (stable key order, trailing newline)."""
    site = SiteConfig.model_json_schema()
    site["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    site["title"] = "hazgw site configuration"
    return {"site.schema.json": json.dumps(site, indent=2, ensure_ascii=False,
                                           sort_keys=True) + "\n"}


def write_schemas(out_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schemas().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def warnings(site: SiteConfig) -> list[str]:
    """``path: warning`` lines for what the config allows but will not do as written: windows
    capped or too short for their rule at the point's poll interval (points read over
    Modbus; an MQTT sensor's interval is its own)."""
    intervals: dict[str, tuple[str, float]] = {
        pid: (f"edges.{eid}.modbus.{did}", dev.poll_interval_s)
        for eid, agent in site.edges.items() for did, dev in agent.modbus.items()
        for pid in dev.registers}
    points = site.enterprise.points()
    # the ring size the compiled rules will have (``alerting.table.compile_rules``)
    k_max = ring_capacity(len(points), samples_needed(
        [(p, intervals[pid][1] if pid in intervals else 1.0)
         for pid, (_, _, p) in points.items()]))
    out: list[str] = []
    for pid, (sid, eqid, p) in points.items():
        if pid not in intervals:
            continue
        device, interval = intervals[pid]
        where = f"enterprise.hazard_sources.{sid}.equipment.{eqid}.points.{pid}"
        out += [f"{where}.{field}: {msg} (polled by {device})"
                for field, msg in window_notes(p, interval, k_max)]
    return out


def summary(site: SiteConfig) -> str:
    """Hazard sources with S, R and level; edges with their devices."""
    ent = site.enterprise
    rows = [f"{ent.name} ({ent.code})", "",
            f"{'hazard source':<18} {'category':<20} {'S':>8} {'R':>8}  {'level':<6} points"]
    for sid, src in ent.hazard_sources.items():
        g = src.grading()
        if src.category == "hazardous_chemicals":
            level: str = g.level if g.level is not None else "not major (S < 1)"
            s_txt, r_txt = f"{g.s:8.2f}", f"{g.r:8.2f}"
        else:
            level, s_txt, r_txt = "n/a (dust rules)", f"{'-':>8}", f"{'-':>8}"
        rows.append(f"{sid:<18} {src.category:<20} {s_txt} {r_txt}  {level:<6} "
                    f"{len(src.iter_points())}")
    rows.append("")
    for eid, agent in site.edges.items():
        regs = sum(len(d.registers) for d in agent.modbus.values())
        rows.append(f"edge {eid}: {len(agent.modbus)} Modbus device(s), {regs} mapped point(s)")
    return "\n".join(rows)
