"""JSON Schemas of the configuration files, generated from the pydantic models."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.config import SiteConfig

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
