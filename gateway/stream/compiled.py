"""The plant as the running core needs it: compiled rules and names, without the config model.

At 100 000 points the validated pydantic model is most of a process's memory (~4 KB a point)
and Python keeps that memory after the model is freed. ``compile_in_child`` therefore
validates and compiles in a short-lived child process and hands back only the compiled form.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from alerting.escalation import Contacts, EscalationConfig
from alerting.register import RegisterRules
from alerting.shelving import ShelvingPolicy
from alerting.table import RuleTable, compile_rules
from gateway.site import SiteConfig
from gateway.stream.boundary import edge_points


@dataclass(frozen=True)
class Labels:
    """What people read instead of ids (the console, the demo): names, units, and what each
    point is (a sparse map: a point without a name or a unit is not in it)."""

    sources: dict[str, str] = field(default_factory=dict)
    equipment: dict[str, str] = field(default_factory=dict)
    points: dict[str, tuple[str, str]] = field(default_factory=dict)   # id → (name, unit)


def labels_of(site: SiteConfig) -> Labels:
    """The site's names and units (units interned: a few distinct strings for all points)."""
    ent = site.enterprise
    return Labels(
        sources={sid: src.name for sid, src in ent.hazard_sources.items() if src.name},
        equipment={eid: eq.name for src in ent.hazard_sources.values()
                   for eid, eq in src.equipment.items() if eq.name},
        points={pid: (p.name, sys.intern(p.unit)) for pid, (_, _, p) in ent.points().items()
                if p.name or p.unit})


@dataclass(frozen=True)
class CompiledSite:
    """Enterprise identity and compiled rules: all the core reads of the plant."""

    enterprise: str
    name: str
    table: RuleTable
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    contacts: Contacts = field(default_factory=Contacts)
    source_levels: dict[str, str] = field(default_factory=dict)
    register_rules: RegisterRules = field(default_factory=RegisterRules)
    # edge id → positions of the points it may send (empty: the site declares no edges)
    edge_points: dict[str, frozenset[int]] = field(default_factory=dict)
    shelving: ShelvingPolicy = field(default_factory=ShelvingPolicy)
    labels: Labels = field(default_factory=Labels)


def poll_intervals(site: SiteConfig) -> dict[str, float]:
    """Point id → the poll interval of the device that reads it."""
    return {pid: dev.poll_interval_s for agent in site.edges.values()
            for dev in agent.modbus.values() for pid in dev.registers}


def devices_of(site: SiteConfig) -> dict[str, str]:
    """Point id → ``<edge>/<device>`` of the Modbus device that delivers it."""
    return {pid: f"{eid}/{did}" for eid, agent in site.edges.items()
            for did, dev in agent.modbus.items() for pid in dev.registers}


def compile_site(site: SiteConfig) -> CompiledSite:
    """Compile a validated site in this process."""
    table = compile_rules(site.enterprise, poll_intervals(site), device_of=devices_of(site))
    return CompiledSite(site.enterprise.code, site.enterprise.name, table,
                        site.escalation, site.contacts, site.source_levels(),
                        site.register_rules, edge_points(site, [str(x) for x in table.ids]),
                        site.shelving, labels_of(site))


def _build_and_compile(factory: Callable[..., SiteConfig], args: tuple[object, ...],
                       ) -> CompiledSite:
    return compile_site(factory(*args))


def compile_in_child(factory: Callable[..., SiteConfig], *args: object) -> CompiledSite:
    """``compile_site(factory(*args))`` in a child process (errors such as ConfigError are
    raised here as they were there)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_build_and_compile, factory, args).result()


def as_compiled(site: SiteConfig | CompiledSite) -> CompiledSite:
    """A compiled site from either form."""
    return site if isinstance(site, CompiledSite) else compile_site(site)
