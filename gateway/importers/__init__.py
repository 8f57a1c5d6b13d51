"""Bringing a Modbus configuration over from another gateway: ``hazgw import thingsboard FILE``
and ``hazgw import telegraf FILE`` write a site YAML skeleton whose edge polls what the other
configuration polled; what neither has (each point's kind, unit and range, the enterprise and
its hazard sources) is left for the user, and ``hazgw check-config`` names each by path.

Each importer reads one format into ``Imported`` (devices in this project's vocabulary, and
notes on what did not map one to one); ``skeleton`` writes the YAML."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.importers import telegraf, thingsboard
from gateway.importers.model import ConfigImportError, Imported

IMPORTERS: dict[str, Callable[[Path], Imported]] = {
    "thingsboard": thingsboard.read,
    "telegraf": telegraf.read,
}

__all__ = ["IMPORTERS", "ConfigImportError", "Imported"]
