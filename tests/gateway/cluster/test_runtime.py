"""What an instance gives each enterprise's session of its own."""

from __future__ import annotations

from pathlib import Path

from gateway.cluster.runtime import enterprise_settings
from gateway.settings import InfluxSettings, Settings


def test_each_enterprise_gets_its_own_spool_client_ids_and_the_nats_transport(
        tmp_path: Path) -> None:
    """Seen before: the enterprises' writers of one instance shared one spool directory
    and replayed (and removed) each other's files."""
    s = Settings(influx=InfluxSettings(spool_dir=tmp_path / "spool"))
    a, b = enterprise_settings(s, "ENT-A"), enterprise_settings(s, "ENT-B")
    assert a.influx.spool_dir == tmp_path / "spool" / "ENT-A"
    assert b.influx.spool_dir == tmp_path / "spool" / "ENT-B"
    assert (a.mqtt.client_id, b.mqtt.client_id) == ("hazgw-ENT-A", "hazgw-ENT-B")
    assert a.transport == b.transport == "nats"
    assert s.influx.spool_dir == tmp_path / "spool"             # the instance's own unchanged
