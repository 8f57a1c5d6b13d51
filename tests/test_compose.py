"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked: the
services, the files they mount, their commands and the settings their environment names."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from edge.settings import EdgeSettings
from gateway.cli import build_parser
from gateway.settings import Settings
from gateway.site import load_site

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_every_part_of_the_stack_is_a_service(compose: dict[str, Any]) -> None:
    assert {"mosquitto", "influxdb", "grafana", "gateway", "edge", "simulator"} <= \
        set(compose["services"])


def test_mounted_host_paths_exist(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes", {}))
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src in named or src == "./var/broker":      # made by hazgw broker-config
                continue
            assert (ROOT / src).exists(), f"{name}: mounts {src}, which does not exist"
        if "build" in svc:
            assert (ROOT / svc["build"] / "Dockerfile").exists()


def _setting_exists(model: type[BaseModel], parts: list[str]) -> bool:
    field = model.model_fields.get(parts[0].lower())
    if field is None:
        return False
    if len(parts) == 1:
        return True
    sub = field.annotation
    return isinstance(sub, type) and issubclass(sub, BaseModel) and _setting_exists(sub, parts[1:])


def test_environment_names_match_the_settings_model(compose: dict[str, Any]) -> None:
    seen = 0
    for name, svc in compose["services"].items():
        for key in svc.get("environment", {}):
            if not key.startswith("HAZGW_") or name == "grafana":
                continue
            seen += 1
            parts = key.removeprefix("HAZGW_").split("__")
            model = EdgeSettings if name == "edge" else Settings    # the edge has its own
            assert _setting_exists(model, parts), f"{name}: {key} is not a setting"
    assert seen >= 10


def test_environment_values_are_valid_settings(compose: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for svc in ("gateway", "edge"):
        for key, value in compose["services"][svc]["environment"].items():
            # a secret from .env stands in as a placeholder; the token table as an empty one
            value = re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "x" * 32, str(value))
            json_valued = key in ("HAZGW_API__TOKENS", "HAZGW_SIGNING__KEYS")
            monkeypatch.setenv(key, "{}" if json_valued else value)
        s = EdgeSettings() if svc == "edge" else Settings()
        assert s.mqtt.host == "mosquitto"
        assert load_site(ROOT / str(s.config).removeprefix("/app/")) is not None


def test_commands_are_hazgw_subcommands(compose: dict[str, Any]) -> None:
    parser = build_parser()
    for name in ("gateway", "edge", "simulator"):
        cmd = compose["services"][name]["command"]
        argv = cmd if isinstance(cmd, list) else shlex.split(cmd)
        args = parser.parse_args([a.replace("/app/", "") for a in argv])
        assert args.func is not None


def test_the_image_stops_on_sigterm_and_compose_gives_it_time(compose: dict[str, Any]) -> None:
    assert "STOPSIGNAL SIGTERM" in (ROOT / "Dockerfile").read_text().splitlines()
    for name in ("gateway", "edge"):
        assert compose["services"][name]["stop_grace_period"] == "30s"


def test_no_secret_has_a_default_and_the_example_names_each(compose: dict[str, Any]) -> None:
    """Seen before: the stack fell back to dev-token-change-me style secrets; each secret now
    must be set (``${VAR:?…}``) and .env.example lists it."""
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"\$\{[A-Z_]*(PASSWORD|TOKEN|SECRET)[A-Z_]*:-", text)
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert required >= {"INFLUXDB_ADMIN_PASSWORD", "HAZGW_INFLUX_TOKEN", "HAZGW_DB_PASSWORD",
                        "HAZGW_GRAFANA_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
    example = {line.split("=")[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert required <= example
    # published ports on this host only
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all"


def test_services_wait_for_what_they_need_and_restart(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        assert svc.get("restart") == "unless-stopped", f"{name}: no restart policy"
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on without conditions"
        for dep, cond in deps.items():
            assert cond == {"condition": "service_healthy"}, f"{name} → {dep}"
            assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has none"
    assert {"mosquitto", "influxdb", "postgres", "grafana", "gateway", "simulator"} <= \
        {n for n, s in services.items() if "healthcheck" in s}


def test_the_console_is_published_and_a_scenario_plays(compose: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    gw = compose["services"]["gateway"]
    assert "127.0.0.1:8080:8080" in gw["ports"]
    for key, value in gw["environment"].items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("HAZGW_API__TOKENS", "{}")      # the .env's values, made by the user
    monkeypatch.setenv("HAZGW_SIGNING__KEYS", "{}")
    assert Settings().api.port == 8080
    argv = [a.replace("/app/", "") for a in compose["services"]["simulator"]["command"]]
    args = build_parser().parse_args(argv)
    assert args.scenario and (ROOT / args.scenario).exists()
    assert "HAZGW_API_TOKENS" in (ROOT / ".env.example").read_text()
