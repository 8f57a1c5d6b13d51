"""The README's snippets run against the demo plant: configuration examples validate (the
escalation example as part of the demo site), every `hazgw` and `make` line of its shell
blocks is a command the CLI and the Makefile know, `check-config` lines pass on the files they
name, the webhook receiver's check accepts the gateway's signature; its links resolve and it
points nowhere outside the repository."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.escalation import Contacts, EscalationConfig
from edge.config import EdgeConfig
from gateway.alarms.notifiers import signature
from gateway.cli import build_parser, main
from gateway.site import SiteConfig, load_site

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text()
EXAMPLES = re.findall(r"```yaml\n(.*?)```", TEXT, re.S)
SHELL = re.findall(r"```(?:sh|bash)\n(.*?)```", TEXT, re.S)
DEMO = ROOT / "config" / "demo" / "plant.yaml"


def shell_commands() -> list[list[str]]:
    """Each command of the shell blocks, continuation lines joined, comments dropped."""
    out = []
    for block in SHELL:
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                out.append(argv)
    return out


def test_there_are_edge_examples() -> None:
    assert sum("edges:" in e for e in EXAMPLES) >= 2


@pytest.mark.parametrize("example", [e for e in EXAMPLES if "edges:" in e])
def test_edge_examples_validate(example: str) -> None:
    for agent in yaml.safe_load(example)["edges"].values():
        EdgeConfig.model_validate(agent)


def test_escalation_example_is_valid_in_the_demo_plant() -> None:
    example = next(e for e in EXAMPLES if e.startswith("escalation:"))
    doc = yaml.safe_load(example)
    cfg = EscalationConfig.model_validate(doc["escalation"])
    contacts = Contacts.model_validate(doc["contacts"])
    site = load_site(DEMO)
    # as check-config would see it: its per-source policies name the demo's sources
    SiteConfig.model_validate({**site.model_dump(), **doc})
    for source in cfg.sources:
        assert source in site.enterprise.hazard_sources, source
    assert contacts.of("lpg_farm", "regulator")


def test_every_hazgw_and_make_line_is_a_known_command() -> None:
    parser = build_parser()
    targets = set(re.findall(r"(?m)^([a-z][\w-]*):", (ROOT / "Makefile").read_text()))
    seen = {"hazgw": 0, "make": 0}
    for argv in shell_commands():
        if argv[0] == "hazgw":
            args = parser.parse_args(argv[1:])    # exits (fails the test) on a bad line
            assert args.func is not None
            seen["hazgw"] += 1
        elif argv[0] == "make":
            assert set(argv[1:]) <= targets, argv
            seen["make"] += 1
    assert seen["hazgw"] >= 4 and seen["make"] >= 1


@pytest.mark.parametrize("argv", [a for a in shell_commands() if a[:2] == ["hazgw",
                                                                           "check-config"]])
def test_check_config_lines_pass(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([argv[1], str(ROOT / argv[2])]) == 0, capsys.readouterr().err


def test_the_webhook_receivers_check_accepts_the_gateways_signature() -> None:
    [code] = [b for b in re.findall(r"```python\n(.*?)```", TEXT, re.S) if "def genuine" in b]
    scope: dict[str, Any] = {}
    exec(code, scope)                 # the README's own code, as a receiver would paste it
    body, key, secret = b'{"v": 1}', "GT101:process@1/step0/webhook:x", b"s" * 32
    header = signature(secret, key, body, int(time.time()))
    assert scope["genuine"](secret, header, key, body)
    assert not scope["genuine"](secret, header, key, body + b" ")
    old = signature(secret, key, body, int(time.time()) - 600)
    assert not scope["genuine"](secret, old, key, body)


def _anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_resolve_and_nothing_points_outside_the_repository() -> None:
    anchors = {_anchor(h) for h in re.findall(r"(?m)^#{1,4} (.+)$", TEXT)}
    for target in re.findall(r"\]\(#([^)]+)\)", TEXT):
        assert target in anchors, target
    for path in re.findall(r"\]\((?!#|https?://)([^)]+)\)", TEXT):
        assert (ROOT / path).exists(), path
    assert "../" not in TEXT
    # a table of contents, and the reader's sections before the developer's
    heads = re.findall(r"(?m)^## (.+)$", TEXT)
    assert heads[0] == "Contents"
    order = [next(i for i, h in enumerate(heads) if h.startswith(p)) for p in (
        "Quick start", "The operator console", "For the regulator", "The full stack",
        "Configuration", "For developers")]
    assert order == sorted(order)
