"""The site YAML skeleton an import writes: the edge as imported, the enterprise to be filled
in. Every value left for the user is ``FILL-IN`` (or a point without kind, unit and range),
so that ``hazgw check-config`` names each one by path until it is done."""

from __future__ import annotations

from typing import Any

import yaml

from gateway.importers.model import Imported

TODO = "FILL-IN"


def site(imported: Imported, edge: str = "edge-01") -> dict[str, Any]:
    """The skeleton as data: one hazard source, one equipment per device, its points empty."""
    equipment = {dev: {"kind": TODO, "name": dev, "points": {
        pid: {} for pid in d.get("registers", {})}} for dev, d in imported.devices.items()}
    return {
        "enterprise": {"code": TODO, "name": TODO, "hazard_sources": {"imported": {
            "name": TODO, "unit_type": TODO, "exposed_population_500m": TODO,
            "substances": [{"substance": TODO, "quantity_t": TODO}],
            "responsible_persons": {"main": {"name": TODO, "phone": TODO},
                                    "technical": {"name": TODO, "phone": TODO},
                                    "operational": {"name": TODO, "phone": TODO}},
            "equipment": equipment}}},
        "edges": {edge: {"modbus": imported.devices}},
    }


def render(imported: Imported, edge: str = "edge-01") -> str:
    """The skeleton as YAML text, with a header that says what to do and what was noted."""
    head = [f"# Imported from {imported.source} by `hazgw import`.",
            "# Addresses are 0-based PDU addresses, as both ThingsBoard and Telegraf use.",
            f"# Fill in every {TODO} and each point's kind, unit, range_low and range_high",
            "# (and its alarm limits); `hazgw check-config FILE` lists what is still missing,",
            "# by path."]
    if imported.notes:
        head.append("# Check these, which did not map one to one:")
        head += [f"#   - {n}" for n in imported.notes]
    body = yaml.safe_dump(site(imported, edge), allow_unicode=True, sort_keys=False,
                          default_flow_style=False, width=100)
    return "\n".join(head) + "\n" + body
