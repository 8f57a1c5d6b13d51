"""``hazgw broker-config``: a real Mosquitto started with the generated files lets only the
site's clients in and each only where the ACL says.

Seen before: the shipped broker allowed anonymous clients with no ACL: an edge id that exists
nowhere raised a false L2 alarm that reached the regulator, and an observer of the readings
suppressed real ones with forged sequence numbers."""

from __future__ import annotations

import getpass
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.broker import Client, clients, password_hash, write
from gateway.cli import main
from gateway.sim.ports import free_port
from gateway.site import SiteConfig
from tests import services
from tests.gateway.test_e2e import small_site

# the security suite (pytest -m security), item 1. only the site's clients on the broker
pytestmark = pytest.mark.security

ENT = "91320582MA1W3K4X5R"


def site_and_edge() -> tuple[SiteConfig, str]:
    site = small_site(free_port())
    [eid] = site.edges
    return site, eid


class Probe:
    """A paho client that says whether it got in and what it received."""

    def __init__(self, port: int, cid: str, user: Client | None, password: str | None = None,
                 ) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
        if user is not None:
            self.c.username_pw_set(user.name, password or user.password)
        self.got: list[tuple[str, bytes]] = []
        self.rc: object = None
        self.granted: list[ReasonCode] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, bytes(m.payload)))
        self.c.on_subscribe = self._on_subscribe
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_connect(self, c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        self.rc = rc
        self.connected.set()

    def _on_subscribe(self, c: mqtt.Client, u: object, mid: int, rcs: list[ReasonCode],
                      p: Properties) -> None:
        self.granted = rcs
        self.subscribed.set()

    def ok(self) -> bool:
        assert self.connected.wait(10)
        return not getattr(self.rc, "is_failure", True)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_only_the_sites_clients_and_each_only_on_its_topics(tmp_path: Path) -> None:
    site, eid = site_and_edge()
    port = free_port()
    out = tmp_path / "broker"
    cs = {c.name: c for c in write(site, out, f"{port} 127.0.0.1", tmp_path / "data")}
    conf = out / "mosquitto.conf"
    conf.write_text(f"user {getpass.getuser()}\n" + conf.read_text()
                    + f"log_dest file {tmp_path}/broker.log\n")
    with services._serve("mosquitto", [services.require_binary("mosquitto"), "-c", str(conf)],
                         tmp_path, port, services.MOSQUITTO_READY):
        anonymous = Probe(port, "anon", None)
        wrong = Probe(port, "wrong", cs[eid], password="not-the-password")
        core = Probe(port, "core", cs["hazgw-core"])
        reader = Probe(port, "reader", cs["reader"])
        edge = Probe(port, "edge", cs[eid])
        try:
            assert not anonymous.ok() and not wrong.ok()
            assert core.ok() and reader.ok() and edge.ok()
            core.c.subscribe(f"mhs/v1/{ENT}/+/readings", qos=1)
            reader.c.subscribe(f"mhs/v1/{ENT}/+/readings", qos=1)   # not the reader's
            assert core.subscribed.wait(10) and reader.subscribed.wait(10)
            mine = f"mhs/v1/{ENT}/{eid}/readings"
            edge.c.publish(mine, b"from the edge", qos=1).wait_for_publish(5)
            # the edge cannot speak for another edge, the reader cannot publish readings
            edge.c.publish(f"mhs/v1/{ENT}/intruder/readings", b"forged", qos=1)
            reader.c.publish(mine, b"forged by a reader", qos=1)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not core.got:
                time.sleep(0.05)
            time.sleep(0.5)                       # anything forged would have come by now
            assert core.got == [(mine, b"from the edge")]
            assert reader.got == []
        finally:
            for p in (anonymous, wrong, core, reader, edge):
                p.close()


def test_the_files_and_the_cli(tmp_path: Path) -> None:
    site, eid = site_and_edge()
    names = [c.name for c in clients(site)]
    assert names == ["hazgw-core", "reader", eid]
    h = password_hash("pw", salt=b"\x00" * 12)
    assert h.startswith("$7$101$AAAAAAAAAAAAAAAA$")
    out = tmp_path / "b"
    assert main(["broker-config", "config/demo/plant.yaml", "--out", str(out)]) == 0
    for name, mode in (("passwd", 0o640), ("credentials.env", 0o600)):
        assert (out / name).stat().st_mode & 0o777 == mode
    conf = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "allow_anonymous true" not in conf
    assert f"password_file {out.resolve()}/passwd" in conf
