"""A deployment of many enterprises: a directory of site files, one enterprise each.

Each file is validated as a site file is on its own (``gateway.site.load_site``); a
deployment adds what only several enterprises need: every enterprise names its
administrative division (GB/T 2260) and industry (GB/T 4754), and no two files hold the same
enterprise code (topics, tags and register rows are keyed by it). Errors are given by file
and path, all of them, so one run of ``hazgw check-config DIR`` lists what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.site import ConfigError, SiteConfig, load_site

SITE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Deployment:
    """The enterprises of a deployment by code, and the file each came from."""

    sites: dict[str, SiteConfig]
    files: dict[str, Path]

    def by_division(self) -> dict[str, list[str]]:
        """Enterprise codes by administrative division (what a regulator's scope reads)."""
        out: dict[str, list[str]] = {}
        for code, site in sorted(self.sites.items()):
            out.setdefault(site.enterprise.division or "", []).append(code)
        return out


def site_files(directory: Path) -> list[Path]:
    """The site files of a deployment directory, by name (hidden files left out)."""
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix in SITE_SUFFIXES and not p.name.startswith("."))


def load_deployment(directory: Path | str) -> Deployment:
    """Read and validate every site file of ``directory``; ConfigError listing every problem
    of every file (``file: path: message``) when any has one."""
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(str(d), ["not a directory"])
    files = site_files(d)
    if not files:
        raise ConfigError(str(d), [f"no site files ({', '.join(SITE_SUFFIXES)}) in it"])
    errors: list[str] = []
    sites: dict[str, SiteConfig] = {}
    origin: dict[str, Path] = {}
    for f in files:
        try:
            site = load_site(f)
        except ConfigError as exc:
            errors += [f"{f.name}: {e}" for e in exc.errors]
            ent = _raw_enterprise(f)    # what a deployment needs of it, said all the same
            division, industry, code = (ent.get("division"), ent.get("industry"),
                                        ent.get("code"))
        else:
            sites[site.enterprise.code] = site
            division, industry = site.enterprise.division, site.enterprise.industry
            code = site.enterprise.code
        if division is None:
            errors.append(f"{f.name}: enterprise.division: required in a deployment "
                          "(GB/T 2260, six digits)")
        if industry is None:
            errors.append(f"{f.name}: enterprise.industry: required in a deployment "
                          "(GB/T 4754, e.g. C2614)")
        if not isinstance(code, str):
            continue
        if code in origin:
            errors.append(f"{f.name}: enterprise.code: {code} is already the enterprise "
                          f"of {origin[code].name}")
        else:
            origin[code] = f
    if errors:
        raise ConfigError(str(d), errors)
    return Deployment(sites, origin)


def _raw_enterprise(f: Path) -> dict[str, Any]:
    """The ``enterprise`` mapping of a file that did not validate, as far as it reads."""
    try:
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    ent = doc.get("enterprise") if isinstance(doc, dict) else None
    return ent if isinstance(ent, dict) else {}
