from __future__ import annotations

from gateway.site import SCHEMA_DIR, schemas


def test_committed_json_schemas_are_current() -> None:
    for name, text in schemas().items():
        committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
        assert committed == text, f"config/schema/{name} is stale: run 'make schema'"


def test_schema_describes_the_gas_limit_fields() -> None:
    text = schemas()["site.schema.json"]
    assert '"gbt50493"' in text and '"hihi"' in text and '"registers"' in text
