"""Imperative shell: asyncio runtime, MQTT ingest, InfluxDB sinks, CLI and demo."""
