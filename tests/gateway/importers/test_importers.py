"""``hazgw import``: a ThingsBoard IoT Gateway Modbus connector file and Telegraf
``inputs.modbus`` files of both styles (written from those projects' documented formats)
become site skeletons whose edge polls the same values from the same server; what they lack
(each point's kind, unit and range) is named by path by ``hazgw check-config``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.config import ModbusDevice
from edge.poller import DevicePoller, Samples
from edge.sim.simulator import SimulatedDevice
from edge.wire import Quality
from gateway import cli
from gateway.importers import IMPORTERS, ConfigImportError
from gateway.importers.skeleton import render
from gateway.sim.ports import free_port
from gateway.site import ConfigError, load_site

SAMPLES = Path(__file__).parent / "samples"
# what the server holds, in this project's vocabulary
SERVED = {"level": ({"address": 0, "type": "float32"}, 6.5),
          "temp": ({"address": 2, "type": "int16", "scale": 0.5}, 21.5),
          "gas": ({"table": "input", "address": 0, "type": "uint16"}, 3.0),
          "pressure": ({"address": 10, "type": "float32", "word_order": "CDAB"}, 1.25),
          "energy": ({"address": 20, "type": "uint32", "scale": 0.01}, 123.45)}
# the samples' names for them
NAMES = {"tank_level": "level", "tank_temp": "temp", "gas": "gas", "pressure": "pressure",
         "energy": "energy"}


class Fixed:
    def value(self, pid: str, t: float | None = None) -> float:
        return SERVED[pid][1]


@pytest.fixture
async def server() -> AsyncIterator[int]:
    port = free_port()
    dev = ModbusDevice.model_validate({"host": "127.0.0.1", "port": port, "registers": {
        pid: reg for pid, (reg, _) in SERVED.items()}})
    sim = SimulatedDevice(dev, Fixed())
    await sim.start()
    try:
        yield port
    finally:
        await sim.stop()


def sample(name: str, port: int, tmp: Path) -> Path:
    path = tmp / name
    path.write_text((SAMPLES / name).read_text().replace("PORT", str(port)))
    return path


@pytest.mark.parametrize(("fmt", "name"), [("thingsboard", "thingsboard_modbus.json"),
                                           ("telegraf", "telegraf_register.conf"),
                                           ("telegraf", "telegraf_request.conf")])
async def test_an_imported_config_polls_the_same_values_from_the_same_server(
        server: int, tmp_path: Path, fmt: str, name: str) -> None:
    imported = IMPORTERS[fmt](sample(name, server, tmp_path))
    [(device_id, dev)] = imported.devices.items()
    got: list[Samples] = []
    poller = DevicePoller(device_id, ModbusDevice.model_validate(dev), got.append)
    try:
        await poller.poll_once()
    finally:
        poller.line.close()
    ids, _, values, quality, _ = got[0]
    assert sorted(ids) == sorted(NAMES)
    assert set(quality.tolist()) == {Quality.GOOD}
    for pid, v in zip(ids, values.tolist(), strict=True):
        assert v == pytest.approx(SERVED[NAMES[pid]][1], rel=1e-6), pid


def test_what_did_not_map_is_noted(tmp_path: Path) -> None:
    tb = IMPORTERS["thingsboard"](sample("thingsboard_modbus.json", 502, tmp_path))
    assert any("'string' (serial_number) has no counterpart" in n for n in tb.notes)
    assert any("attributeUpdates: writes are not part of monitoring" in n for n in tb.notes)
    tg = IMPORTERS["telegraf"](sample("telegraf_register.conf", 502, tmp_path))
    assert any("FLOAT32 in Telegraf's register style is fixed point" in n for n in tg.notes)
    assert tg.devices["Tank_Farm_PLC_1"]["registers"]["energy"] == {
        "table": "holding", "address": 20, "type": "uint32", "scale": 0.01}


def test_check_config_names_each_missing_item_of_the_skeleton_by_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site.yaml"
    assert cli.main(["import", "telegraf", str(sample("telegraf_request.conf", 502, tmp_path)),
                     "--out", str(out)]) == 0
    assert "1 device(s), 5 point(s)" in capsys.readouterr().out
    with pytest.raises(ConfigError) as err:
        load_site(out)
    errors = "\n".join(err.value.errors)
    for pid in NAMES:
        for item in ("kind", "unit", "range_low", "range_high"):
            assert f"equipment.Tank_Farm_PLC_1.points.{pid}.{item}" in errors, (pid, item)
    assert "enterprise.code" in errors
    assert render(IMPORTERS["telegraf"](tmp_path / "telegraf_request.conf")).startswith(
        "# Imported from Telegraf inputs.modbus")


@pytest.mark.parametrize(("fmt", "content", "message"), [
    ("thingsboard", "{not json", "not a readable JSON file"),
    ("thingsboard", '{"master": {}}', "no master.slaves list"),
    ("telegraf", "[[inputs.cpu]]\n", "no [[inputs.modbus]] section"),
    ("telegraf", "[[inputs.modbus\n", "not a readable TOML file"),
    # values of the wrong kind name the section (they raised a traceback)
    ("thingsboard", '{"master": {"slaves": ["x"]}}', "master.slaves[0]: a value of the wrong"),
    ("thingsboard", '{"master": {"slaves": [{"timeseries": [{"address": "forty"}]}]}}',
     "master.slaves[0]: a value of the wrong kind"),
    ("thingsboard", '{"master": {"slaves": [{"timeseries": [{"tag": "t", "type": "16int", '
     '"divider": 0}]}]}}', "master.slaves[0]: a value of the wrong kind"),
    ("telegraf", '[[inputs.modbus]]\nholding_registers = [{name = "a", address = ["x"]}]\n',
     "inputs.modbus[0]: a value of the wrong kind"),
    ("telegraf", '[[inputs.modbus]]\ntimeout = "soon"\n',
     "inputs.modbus[0]: a value of the wrong kind")])
def test_a_file_that_cannot_be_imported_says_why(tmp_path: Path, fmt: str, content: str,
                                                 message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in"
    path.write_text(content)
    with pytest.raises(ConfigImportError, match=re.escape(message)):
        IMPORTERS[fmt](path)
    assert cli.main(["import", fmt, str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
