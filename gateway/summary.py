"""Human-readable summary of a valid site configuration (``hazgw check-config``)."""

from __future__ import annotations

from gateway.config import SiteConfig


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
